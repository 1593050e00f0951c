#!/usr/bin/env bash
# reinforce on llama3.1-8b-instruct: bash recipes/llama3.1-8b-instruct/reinforce.sh (environment: recipes/common.sh; DRY_RUN=1 validates only)
RUN=reinforce
source "$(dirname "$0")/../objectives/reinforce.sh"
source "$(dirname "$0")/model.sh"
