#!/usr/bin/env bash
# Reproduce the paper's Table 1 (Qwen2.5-Math-7B, pass@k on MATH / AIME 2025 / AMC23, k = 1..256):
# evaluate the base model and each trained checkpoint, then compare with the paper.
#
#   bash benchmarks/reproduce_table1.sh            # DRY_RUN=1: print the commands only
#
# Protocol (paper-spec §3): 256 samples per problem, temperature 0.6, top-p 0.95, 4,096 new tokens,
# the qwen template, the full 5,000-problem MATH test set.
# Needs: one node of GPUs with vLLM (one GPU per checkpoint, bf16 7B fits an 80 GB card), the
# datasets from the hub or as local files (DATA_DIR), the checkpoints of recipes/qwen2.5-math-7b.
# Expected wall-clock (estimate, not measured): about 1.3 M responses per checkpoint, 6-9 hours on
# one H200; the six evaluations run in parallel, one per GPU, so about the same on one 8-GPU node.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL_BASE=${MODEL_BASE:-Qwen/Qwen2.5-Math-7B}
CKPT_DIR=${CKPT_DIR:-checkpoints/qwen2.5-math-7b}   # <CKPT_DIR>/<method>: HF checkpoints of the recipes
OUT_DIR=${OUT_DIR:-runs/table1}
DATA_DIR=${DATA_DIR:-}                              # folder with math_test / aime2025_test / amc23_test .parquet
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
for method in base grpo ppo psr nsr w-reinforce; do
  model=$CKPT_DIR/$method
  [ "$method" = base ] && model=$MODEL_BASE
  if [ "$method" != base ] && [ ! -d "$model" ] && [ "${DRY_RUN:-0}" != 1 ]; then
    echo "skip $method: no checkpoint at $model" >&2; continue
  fi
  launch "$gpu" "$OUT_DIR/$method.log" "$PYTHON" -m openrlhf_nsr.eval --model "$model" --datasets "$DATASETS" \
    --template qwen --n 256 --temperature 0.6 --top-p 0.95 --max-tokens 4096 --backend vllm \
    --out "$OUT_DIR/$method"
  labels+=("$method") outs+=("$OUT_DIR/$method") gpu=$((gpu + 1))
done
wait
run "$PYTHON" -m openrlhf_nsr.eval compare "${outs[@]}" --labels "$(IFS=,; echo "${labels[*]}")" \
  --paper qwen2.5-math-7b --out "$OUT_DIR/compare_passk.png"
