# Shared by reproduce_table1.sh / reproduce_figure3.sh, which set MODEL_BASE, CKPT_DIR, OUT_DIR,
# METHODS, EVAL_FLAGS (the paper's protocol) and PAPER, then source this file: it evaluates the base
# model and every checkpoint <CKPT_DIR>/<method> in parallel, one GPU each, then compares with the
# paper. DATA_DIR: local math_test / aime2025_test / amc23_test .parquet (default: the hub).
# DRY_RUN=1 prints the commands instead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python}
if [ -n "${DATA_DIR:-}" ]; then
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
for method in "${METHODS[@]}"; do
  model=$CKPT_DIR/$method
  [ "$method" = base ] && model=$MODEL_BASE
  if [ "$method" != base ] && [ ! -d "$model" ] && [ "${DRY_RUN:-0}" != 1 ]; then
    echo "skip $method: no checkpoint at $model" >&2; continue
  fi
  launch "$gpu" "$OUT_DIR/$method.log" "$PYTHON" -m openrlhf_nsr.eval --model "$model" --datasets "$DATASETS" \
    "${EVAL_FLAGS[@]}" --backend vllm --out "$OUT_DIR/$method"
  labels+=("$method") outs+=("$OUT_DIR/$method") gpu=$((gpu + 1))
done
wait
run "$PYTHON" -m openrlhf_nsr.eval compare "${outs[@]}" --labels "$(IFS=,; echo "${labels[*]}")" \
  --paper "$PAPER" --out "$OUT_DIR/compare_passk.png"
