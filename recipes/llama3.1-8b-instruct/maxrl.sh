#!/usr/bin/env bash
# maxrl on llama3.1-8b-instruct: the settings of recipes/objectives/maxrl.sh and recipes/llama3.1-8b-instruct/model.sh, launched by
# recipes/launch.sh (its top lists the environment variables; DRY_RUN=1 validates only).
exec bash "$(dirname "$0")/../launch.sh" llama3.1-8b-instruct maxrl
