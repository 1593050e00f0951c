#!/usr/bin/env bash
# nsr on llama3.1-8b-instruct: bash recipes/llama3.1-8b-instruct/nsr.sh (environment: recipes/common.sh; DRY_RUN=1 validates only)
RUN=nsr
source "$(dirname "$0")/../objectives/nsr.sh"
source "$(dirname "$0")/model.sh"
