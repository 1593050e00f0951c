#!/usr/bin/env bash
# ppo on llama3.1-8b-instruct: bash recipes/llama3.1-8b-instruct/ppo.sh (environment: recipes/common.sh; DRY_RUN=1 validates only)
RUN=ppo
source "$(dirname "$0")/../objectives/ppo.sh"
source "$(dirname "$0")/model.sh"
