#!/usr/bin/env bash
# Reproduce the paper's Figure 3 (Qwen3-4B, non-thinking mode, pass@k on MATH / AIME 2025 / AMC23,
# k = 1..64): evaluate the base model and the final model of each trained run, then compare with
# the paper.
#
#   bash benchmarks/reproduce_figure3.sh             # evaluate, then compare
#   DRY_RUN=1 bash benchmarks/reproduce_figure3.sh   # print the commands only
#
# Protocol (docs/paper.md §3): 64 samples per problem, temperature 0.7, top-p 0.8, top-k 20, the
# qwen3_no_thinking template; new tokens up to 31,744 (the paper's training response length,
# docs/paper.md §2).
# Runs (Figure 3's curves): base, then ppo grpo psr nsr, each the final model its recipe writes
# ($CHECKPOINT_ROOT/qwen3-4b/<run>/final, recipes/README.md); a run without one is skipped.
# Needs: one node of GPUs with vLLM (one GPU per checkpoint), the datasets from the hub or as local
# files (DATA_DIR).
# Expected wall-clock (estimate, not measured): about 325 k responses per checkpoint, 3-5 hours on
# one H200; the five evaluations run in parallel, one per GPU.
set -euo pipefail
MODEL_NAME=qwen3-4b                     # the recipes' <model>
MODEL_BASE_DEFAULT=Qwen/Qwen3-4B        # MODEL_BASE unless set
RUNS=(ppo grpo psr nsr)                 # the recipes' <run> names, after the base model (Figure 3's curves)
EVAL_FLAGS=(--template qwen3_no_thinking --n 64 --temperature 0.7 --top-p 0.8 --top-k 20 --max-tokens 31744)
PAPER=qwen3-4b
OUT_NAME=figure3                        # default OUT_DIR: <repo>/runs/figure3
source "$(dirname "$0")/eval_checkpoints.sh"
