#!/usr/bin/env bash
# nsr on qwen3-4b: bash recipes/qwen3-4b/nsr.sh (environment: recipes/common.sh; DRY_RUN=1 validates only)
RUN=nsr
source "$(dirname "$0")/../objectives/nsr.sh"
source "$(dirname "$0")/model.sh"
