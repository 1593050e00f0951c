#!/usr/bin/env bash
# w_reinforce on llama3.1-8b-instruct: bash recipes/llama3.1-8b-instruct/w_reinforce.sh (environment: recipes/common.sh; DRY_RUN=1 validates only)
RUN=w_reinforce
source "$(dirname "$0")/../objectives/w_reinforce.sh"
source "$(dirname "$0")/model.sh"
