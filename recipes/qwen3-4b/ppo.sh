#!/usr/bin/env bash
# ppo on qwen3-4b: bash recipes/qwen3-4b/ppo.sh (environment: recipes/common.sh; DRY_RUN=1 validates only)
RUN=ppo
source "$(dirname "$0")/../objectives/ppo.sh"
source "$(dirname "$0")/model.sh"
