#!/usr/bin/env bash
# Reproduce the paper's Figure 3 (Qwen3-4B, non-thinking mode, pass@k on MATH / AIME 2025 / AMC23,
# k = 1..64): evaluate the base model and each trained checkpoint, then compare with the paper.
#
#   bash benchmarks/reproduce_figure3.sh           # DRY_RUN=1: print the commands only
#
# Protocol (paper-spec §3): 64 samples per problem, temperature 0.7, top-p 0.8, top-k 20, the
# qwen3_no_thinking template; new tokens up to 31,744 (the paper's training response length, §2).
# Needs: one node of GPUs with vLLM (one GPU per checkpoint), the datasets from the hub or as local
# files (DATA_DIR), the checkpoints of recipes/qwen3-4b (CKPT_DIR/<method>).
# Expected wall-clock (estimate, not measured): about 325 k responses per checkpoint, 3-5 hours on
# one H200; the five evaluations run in parallel, one per GPU.
MODEL_BASE=${MODEL_BASE:-Qwen/Qwen3-4B}
CKPT_DIR=${CKPT_DIR:-checkpoints/qwen3-4b}
OUT_DIR=${OUT_DIR:-runs/figure3}
METHODS=(base ppo grpo psr nsr)
EVAL_FLAGS=(--template qwen3_no_thinking --n 64 --temperature 0.7 --top-p 0.8 --top-k 20 --max-tokens 31744)
PAPER=qwen3-4b
source "$(dirname "$0")/eval_checkpoints.sh"
