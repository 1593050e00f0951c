#!/usr/bin/env bash
# ppo on qwen2.5-math-7b: bash recipes/qwen2.5-math-7b/ppo.sh (environment: recipes/common.sh; DRY_RUN=1 validates only)
RUN=ppo
source "$(dirname "$0")/../objectives/ppo.sh"
source "$(dirname "$0")/model.sh"
