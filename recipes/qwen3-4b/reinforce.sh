#!/usr/bin/env bash
# reinforce on qwen3-4b: bash recipes/qwen3-4b/reinforce.sh (environment: recipes/common.sh; DRY_RUN=1 validates only)
RUN=reinforce
source "$(dirname "$0")/../objectives/reinforce.sh"
source "$(dirname "$0")/model.sh"
