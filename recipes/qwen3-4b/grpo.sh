#!/usr/bin/env bash
# grpo on qwen3-4b: bash recipes/qwen3-4b/grpo.sh (environment: recipes/common.sh; DRY_RUN=1 validates only)
RUN=grpo
source "$(dirname "$0")/../objectives/grpo.sh"
source "$(dirname "$0")/model.sh"
