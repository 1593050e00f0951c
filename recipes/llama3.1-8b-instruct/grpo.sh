#!/usr/bin/env bash
# grpo on llama3.1-8b-instruct: bash recipes/llama3.1-8b-instruct/grpo.sh (environment: recipes/common.sh; DRY_RUN=1 validates only)
RUN=grpo
source "$(dirname "$0")/../objectives/grpo.sh"
source "$(dirname "$0")/model.sh"
