#!/usr/bin/env bash
# psr on llama3.1-8b-instruct: bash recipes/llama3.1-8b-instruct/psr.sh (environment: recipes/common.sh; DRY_RUN=1 validates only)
RUN=psr
source "$(dirname "$0")/../objectives/psr.sh"
source "$(dirname "$0")/model.sh"
