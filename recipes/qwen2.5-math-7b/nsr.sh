#!/usr/bin/env bash
# nsr on qwen2.5-math-7b: bash recipes/qwen2.5-math-7b/nsr.sh (environment: recipes/common.sh; DRY_RUN=1 validates only)
RUN=nsr
source "$(dirname "$0")/../objectives/nsr.sh"
source "$(dirname "$0")/model.sh"
