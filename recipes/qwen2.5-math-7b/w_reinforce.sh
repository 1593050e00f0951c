#!/usr/bin/env bash
# w_reinforce on qwen2.5-math-7b: bash recipes/qwen2.5-math-7b/w_reinforce.sh (environment: recipes/common.sh; DRY_RUN=1 validates only)
RUN=w_reinforce
source "$(dirname "$0")/../objectives/w_reinforce.sh"
source "$(dirname "$0")/model.sh"
