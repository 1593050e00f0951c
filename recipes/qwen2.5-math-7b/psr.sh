#!/usr/bin/env bash
# psr on qwen2.5-math-7b: bash recipes/qwen2.5-math-7b/psr.sh (environment: recipes/common.sh; DRY_RUN=1 validates only)
RUN=psr
source "$(dirname "$0")/../objectives/psr.sh"
source "$(dirname "$0")/model.sh"
