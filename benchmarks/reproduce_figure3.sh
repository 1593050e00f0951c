#!/usr/bin/env bash
# Reproduce the paper's Figure 3 (Qwen3-4B, non-thinking mode, pass@k on MATH / AIME 2025 / AMC23,
# k = 1..64): evaluate the base model and each trained checkpoint, then compare with the paper.
#
#   bash benchmarks/reproduce_figure3.sh           # DRY_RUN=1: print the commands only
#
# Protocol (paper-spec §3): 64 samples per problem, temperature 0.7, top-p 0.8, top-k 20, the
# qwen3_no_thinking template; new tokens up to 31,744 (the paper's training response length, §2).
# Needs: one node of GPUs with vLLM (one GPU per checkpoint), the datasets from the hub or as local
# files (DATA_DIR), the final models of recipes/qwen3-4b ($CHECKPOINT_ROOT/qwen3-4b/<run>/final,
# recipes/README.md); environment: eval_checkpoints.sh.
# Expected wall-clock (estimate, not measured): about 325 k responses per checkpoint, 3-5 hours on
# one H200; the five evaluations run in parallel, one per GPU.
set -euo pipefail
MODEL_NAME=qwen3-4b                     # the recipes' <model>
MODEL_BASE=${MODEL_BASE:-Qwen/Qwen3-4B}
RUNS=(ppo grpo psr nsr)                 # the recipes' <run> names, after the base model (Figure 3's curves)
EVAL_FLAGS=(--template qwen3_no_thinking --n 64 --temperature 0.7 --top-p 0.8 --top-k 20 --max-tokens 31744)
PAPER=qwen3-4b
OUT_NAME=figure3                        # default OUT_DIR: <repo>/runs/figure3
source "$(dirname "$0")/eval_checkpoints.sh"
