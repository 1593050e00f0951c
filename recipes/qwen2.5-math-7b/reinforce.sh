#!/usr/bin/env bash
# reinforce on qwen2.5-math-7b: bash recipes/qwen2.5-math-7b/reinforce.sh (environment: recipes/common.sh; DRY_RUN=1 validates only)
RUN=reinforce
source "$(dirname "$0")/../objectives/reinforce.sh"
source "$(dirname "$0")/model.sh"
