# Shared by reproduce_table1.sh / reproduce_figure3.sh, which set MODEL_NAME (the recipes' <model>),
# MODEL_BASE, RUNS, EVAL_FLAGS (the paper's protocol), PAPER and OUT_NAME, then source this file: it
# evaluates the base model and the final model of every run, where the recipes write it
# (recipes/paths.sh: $CHECKPOINT_ROOT/<model>/<run>/final), then compares with the paper. A run
# whose final model is missing is skipped, naming its recipe.
#
# Environment (all optional; relative paths are taken against the directory you launch from):
#   CHECKPOINT_ROOT  root of the recipes' outputs (default <repo>/checkpoints)
#   MODEL_BASE       the base model, hub id or local path (default: the paper's)
#   OUT_DIR          evaluations, one folder and one <run>.log per run (default <repo>/runs/<OUT_NAME>)
#   DATA_DIR         local math_test / aime2025_test / amc23_test .parquet (default: the hub)
#   BACKEND          vllm (default): every evaluation in the background at once, one GPU each
#                    (CUDA_VISIBLE_DEVICES=0, 1, ...); hf: one after the other, no GPU assignment
#                    (CPU-sized models, for a test)
#   EVAL_EXTRA_ARGS  more `python -m openrlhf_nsr.eval` flags, appended to each evaluation (to shrink
#                    one for a test: --max-problems 2 --n 2 --max-tokens 8)
#   PYTHON           interpreter (default <repo>/.venv/bin/python if there is one, else python)
#   DRY_RUN=1        print the commands instead
# An evaluation that fails is reported on stderr with its log (`evaluation of <run> failed (exit N):
# see <log>`) once all have finished; the comparison is then skipped and the exit status is 1.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../recipes/paths.sh"
PYTHON=$(python_command "${PYTHON:-}")
BACKEND=${BACKEND:-vllm}
case "$BACKEND" in vllm | hf) ;; *) echo "BACKEND must be vllm or hf, got '$BACKEND'" >&2; exit 2 ;; esac
MODEL_BASE=$(model_path_or_id "$MODEL_BASE")
OUT_DIR=$(abs_path "${OUT_DIR:-$REPO_ROOT/runs/$OUT_NAME}")
if [ -n "${DATA_DIR:-}" ]; then
  DATA_DIR=$(abs_path "$DATA_DIR")
  DATASETS="math=$DATA_DIR/math_test.parquet,aime2025=$DATA_DIR/aime2025_test.parquet,amc23=$DATA_DIR/amc23_test.parquet"
else
  DATASETS=math,aime2025,amc23
fi
# shellcheck disable=SC2206
EXTRA=(${EVAL_EXTRA_ARGS:-})
cd "$REPO_ROOT"  # python -m openrlhf_nsr finds this checkout; every path above is absolute
DRY=${DRY_RUN:-0}

run() { if [ "$DRY" = 1 ]; then echo "$*"; else "$@"; fi; }
pids=() rcs=()  # per started run: a background PID (vllm) or an exit status already known (hf)
launch() {  # launch GPU LOG COMMAND...: one evaluation, its output in LOG
  local gpu=$1 log=$2; shift 2
  if [ "$BACKEND" = hf ]; then
    if [ "$DRY" = 1 ]; then echo "$*"; rcs+=(0); else local rc=0; "$@" > "$log" 2>&1 || rc=$?; rcs+=("$rc"); fi
    pids+=("")
  elif [ "$DRY" = 1 ]; then
    echo "CUDA_VISIBLE_DEVICES=$gpu $*"; pids+=("") rcs+=(0)
  else
    CUDA_VISIBLE_DEVICES=$gpu "$@" > "$log" 2>&1 &
    pids+=("$!") rcs+=("")
  fi
}
for name in "${RUNS[@]}"; do
  case " ${RUN_NAMES[*]} " in *" $name "*) ;; *) echo "unknown run '$name': one of ${RUN_NAMES[*]}" >&2; exit 2 ;; esac
done
[ "$DRY" = 1 ] || mkdir -p "$OUT_DIR"

labels=() outs=() gpu=0
for name in base "${RUNS[@]}"; do
  model=$MODEL_BASE
  if [ "$name" != base ]; then
    model=$(final_model "$MODEL_NAME" "$name")
    if [ ! -d "$model" ] && [ "$DRY" != 1 ]; then
      echo "skip $name: no final model at $model (train it: bash $(recipe_of "$MODEL_NAME" "$name"))" >&2; continue
    fi
  fi
  launch "$gpu" "$OUT_DIR/$name.log" "$PYTHON" -m openrlhf_nsr.eval --model "$model" --datasets "$DATASETS" \
    "${EVAL_FLAGS[@]}" --backend "$BACKEND" --out "$OUT_DIR/$name" "${EXTRA[@]}"
  labels+=("$name") outs+=("$OUT_DIR/$name") gpu=$((gpu + 1))
done

failed=0
for i in "${!labels[@]}"; do
  rc=${rcs[$i]}
  if [ -n "${pids[$i]}" ]; then rc=0; wait "${pids[$i]}" || rc=$?; fi
  if [ "$rc" != 0 ]; then
    echo "evaluation of ${labels[$i]} failed (exit $rc): see $OUT_DIR/${labels[$i]}.log" >&2; failed=1
  fi
done
if [ "$failed" = 1 ]; then
  echo "comparison skipped: an evaluation failed" >&2; exit 1
fi
# the run names are the labels: compare matches them to the paper's methods (w_reinforce: W-REINFORCE)
run "$PYTHON" -m openrlhf_nsr.eval compare "${outs[@]}" --labels "$(IFS=,; echo "${labels[*]}")" \
  --paper "$PAPER" --out "$OUT_DIR/compare_passk.png"
