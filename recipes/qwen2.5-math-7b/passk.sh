#!/usr/bin/env bash
# passk on qwen2.5-math-7b: the settings of recipes/objectives/passk.sh and recipes/qwen2.5-math-7b/model.sh, launched by
# recipes/launch.sh (its top lists the environment variables; DRY_RUN=1 validates only).
exec bash "$(dirname "$0")/../launch.sh" qwen2.5-math-7b passk
