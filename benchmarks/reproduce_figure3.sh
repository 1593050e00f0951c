#!/usr/bin/env bash
# Reproduce the paper's Figure 3 (Qwen3-4B, non-thinking mode, pass@k on MATH / AIME 2025 / AMC23,
# k = 1..64): evaluate the base model and each trained checkpoint, then compare with the paper.
#
#   bash benchmarks/reproduce_figure3.sh           # DRY_RUN=1: print the commands only
#
# Protocol (paper-spec §3): 64 samples per problem, temperature 0.7, top-p 0.8, top-k 20, the
# qwen3_no_thinking template; new tokens up to 31,744 (the paper's training response length, §2).
# Needs: one node of GPUs with vLLM (one GPU per checkpoint), the datasets from the hub or as local
# files (DATA_DIR), the checkpoints of recipes/qwen3-4b.
# Expected wall-clock (estimate, not measured): about 325 k responses per checkpoint, 3-5 hours on
# one H200; the five evaluations run in parallel, one per GPU.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL_BASE=${MODEL_BASE:-Qwen/Qwen3-4B}
CKPT_DIR=${CKPT_DIR:-checkpoints/qwen3-4b}
OUT_DIR=${OUT_DIR:-runs/figure3}
DATA_DIR=${DATA_DIR:-}
PYTHON=${PYTHON:-python}
if [ -n "$DATA_DIR" ]; then
  DATASETS="math=$DATA_DIR/math_test.parquet,aime2025=$DATA_DIR/aime2025_test.parquet,amc23=$DATA_DIR/amc23_test.parquet"
else
  DATASETS=math,aime2025,amc23
fi

run() { if [ "${DRY_RUN:-0}" = 1 ]; then echo "$*"; else "$@"; fi; }
launch() {  # launch GPU LOG COMMAND...: one evaluation in the background on one GPU
  local gpu=$1 log=$2; shift 2
  if [ "${DRY_RUN:-0}" = 1 ]; then echo "CUDA_VISIBLE_DEVICES=$gpu $*"; else CUDA_VISIBLE_DEVICES=$gpu "$@" > "$log" 2>&1 & fi
}
mkdir -p "$OUT_DIR"

labels=() outs=() gpu=0
for method in base ppo grpo psr nsr; do
  model=$CKPT_DIR/$method
  [ "$method" = base ] && model=$MODEL_BASE
  if [ "$method" != base ] && [ ! -d "$model" ] && [ "${DRY_RUN:-0}" != 1 ]; then
    echo "skip $method: no checkpoint at $model" >&2; continue
  fi
  launch "$gpu" "$OUT_DIR/$method.log" "$PYTHON" -m openrlhf_nsr.eval --model "$model" --datasets "$DATASETS" \
    --template qwen3_no_thinking --n 64 --temperature 0.7 --top-p 0.8 --top-k 20 --max-tokens 31744 \
    --backend vllm --out "$OUT_DIR/$method"
  labels+=("$method") outs+=("$OUT_DIR/$method") gpu=$((gpu + 1))
done
wait
run "$PYTHON" -m openrlhf_nsr.eval compare "${outs[@]}" --labels "$(IFS=,; echo "${labels[*]}")" \
  --paper qwen3-4b --out "$OUT_DIR/compare_passk.png"
