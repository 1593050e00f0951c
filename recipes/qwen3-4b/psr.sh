#!/usr/bin/env bash
# psr on qwen3-4b: bash recipes/qwen3-4b/psr.sh (environment: recipes/common.sh; DRY_RUN=1 validates only)
RUN=psr
source "$(dirname "$0")/../objectives/psr.sh"
source "$(dirname "$0")/model.sh"
