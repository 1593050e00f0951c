#!/usr/bin/env bash
# passk on qwen3-4b: the settings of recipes/objectives/passk.sh and recipes/qwen3-4b/model.sh, launched by
# recipes/launch.sh (its top lists the environment variables; DRY_RUN=1 validates only).
exec bash "$(dirname "$0")/../launch.sh" qwen3-4b passk
