#!/usr/bin/env bash
# Reproduce the paper's Table 1 (Qwen2.5-Math-7B, pass@k on MATH / AIME 2025 / AMC23, k = 1..256):
# evaluate the base model and the final model of each trained run, then compare with the paper.
#
#   bash benchmarks/reproduce_table1.sh              # evaluate, then compare
#   DRY_RUN=1 bash benchmarks/reproduce_table1.sh    # print the commands only
#
# Protocol (docs/paper.md §3): 256 samples per problem, temperature 0.6, top-p 0.95, 4,096 new
# tokens, the qwen template, the full 5,000-problem MATH test set.
# Runs (Table 1's rows): base, then grpo ppo psr nsr w_reinforce, each the final model its recipe
# writes ($CHECKPOINT_ROOT/qwen2.5-math-7b/<run>/final, recipes/README.md); a run without one is
# skipped. Needs: one node of GPUs with vLLM (one GPU per checkpoint, bf16 7B fits an 80 GB card),
# the datasets from the hub or as local files (DATA_DIR).
# Expected wall-clock (estimate, not measured): about 1.3 M responses per checkpoint, 6-9 hours on
# one H200; the six evaluations run in parallel, one per GPU, so about the same on one 8-GPU node.
set -euo pipefail
MODEL_NAME=qwen2.5-math-7b              # the recipes' <model>
MODEL_BASE_DEFAULT=Qwen/Qwen2.5-Math-7B # MODEL_BASE unless set
RUNS=(grpo ppo psr nsr w_reinforce)     # the recipes' <run> names, after the base model (Table 1's rows)
EVAL_FLAGS=(--template qwen --n 256 --temperature 0.6 --top-p 0.95 --max-tokens 4096)
PAPER=qwen2.5-math-7b
OUT_NAME=table1                         # default OUT_DIR: <repo>/runs/table1
source "$(dirname "$0")/eval_checkpoints.sh"
