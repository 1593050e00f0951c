#!/usr/bin/env bash
# grpo on qwen2.5-math-7b: bash recipes/qwen2.5-math-7b/grpo.sh (environment: recipes/common.sh; DRY_RUN=1 validates only)
RUN=grpo
source "$(dirname "$0")/../objectives/grpo.sh"
source "$(dirname "$0")/model.sh"
