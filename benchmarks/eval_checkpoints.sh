#!/usr/bin/env bash
# Evaluate the base model and the final model of each trained run where the recipes write it
# (recipes/paths.sh: $CHECKPOINT_ROOT/<model>/<run>/final), then compare them (and the paper's
# numbers, with PAPER). A run whose final model is missing is skipped, naming its recipe.
# reproduce_table1.sh / reproduce_figure3.sh set the variables for the paper's protocol and source
# this file; run it directly for another selection:
#
#   MODEL_NAME=qwen3-4b MODEL_BASE=Qwen/Qwen3-4B RUNS="psr nsr" PAPER=qwen3-4b \
#     EVAL_FLAGS="--template qwen3_no_thinking --n 64 --temperature 0.7 --top-p 0.8 --top-k 20" \
#     bash benchmarks/eval_checkpoints.sh
#
# An evaluation that fails is reported on stderr with its log (`evaluation of <run> failed (exit N):
# see <log> (its last line: ...)`) once all have finished; the comparison is then skipped and the
# exit status is 1.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../recipes/paths.sh"
SELF=benchmarks/$(basename "$0")  # the script the user ran: this one, or a reproduce_*.sh sourcing it
PAPER_MODELS=$(cut -d, -f1 "$REPO_ROOT/openrlhf_nsr/paper_passk.csv" | tail -n +2 | sort -u | tr '\n' ' ')
MODEL_BASE_DEFAULT=${MODEL_BASE_DEFAULT:-}  # a reproduce_*.sh: the paper's base model

usage() {  # the calling script's header, then the variables read, with their defaults
  echo "usage: [VARIABLE=value ...] bash $SELF [-h | --help]    (its settings: the environment variables below)"
  echo
  sed -n '2,${/^#/!q;s/^# \{0,1\}//;p}' "$0"
  local models=() folder
  for folder in "$REPO_ROOT"/recipes/*/model.sh; do models+=("$(basename "$(dirname "$folder")")"); done
  echo
  if [ -z "$MODEL_BASE_DEFAULT" ]; then
    cat <<EOF
Required (a reproduce_*.sh sets them):
  MODEL_NAME       the recipes' <model> whose runs are evaluated: ${models[*]}
  MODEL_BASE       the base model: a hub id or a local path
  RUNS             the runs evaluated after the base model, space-separated, from: ${RUN_NAMES[*]}
  EVAL_FLAGS       the protocol: python -m openrlhf_nsr.eval flags, space-separated
Optional:
  PAPER            the model whose paper numbers compare adds: ${PAPER_MODELS% } (default: none)
  OUT_NAME         the default OUT_DIR's folder name (default: \$MODEL_NAME)

EOF
  fi
  cat <<EOF
Environment (all optional; relative paths are taken against the directory you launch from):
EOF
  if [ -n "$MODEL_BASE_DEFAULT" ]; then
    echo "  MODEL_BASE       the base model: a hub id or a local path (default $MODEL_BASE_DEFAULT)"
  fi
  cat <<EOF
  CHECKPOINT_ROOT  root of the recipes' outputs: a run's final model is
                   \$CHECKPOINT_ROOT/${MODEL_NAME:-<model>}/<run>/final (default $REPO_ROOT/checkpoints)
  OUT_DIR          the evaluations: a folder and a <run>.log per run, compare_passk.png
                   (default $REPO_ROOT/runs/${OUT_NAME:-<OUT_NAME>})
  DATA_DIR         a folder of math_test / aime2025_test / amc23_test .parquet
                   (default: none, the datasets come from the Hugging Face hub)
  BACKEND          vllm: every evaluation at once in the background, one GPU each
                   (CUDA_VISIBLE_DEVICES=0, 1, ...); hf: one after the other, no GPU assigned
                   (CPU-sized models, for a test) (default vllm)
  EVAL_EXTRA_ARGS  more python -m openrlhf_nsr.eval flags, appended to each evaluation, e.g. to
                   shrink one for a test: --max-problems 2 --n 2 --max-tokens 8 (default: none)
  PYTHON           the interpreter (default $(python_command ""))
  DRY_RUN          1: print the commands, a run a real run would skip marked "# skip <run>: no
                   final model at <path>", and run nothing (default 0)
EOF
}
for arg in "$@"; do
  case "$arg" in -h | --help) usage; exit 0 ;; esac
done
if [ $# -gt 0 ]; then
  echo "$SELF: unexpected argument '$1': it takes none, its settings are environment variables (bash $SELF --help)" >&2
  exit 2
fi

# need NAME HOW: a required variable, one line naming it where it is missing
need() { if [ -z "${!1:-}" ]; then echo "$SELF: $1 is not set: $2 (bash $SELF --help)" >&2; exit 2; fi; }
# as_array NAME: a space-separated string (from the environment) becomes an array; an array stays one
as_array() { if [[ "$(declare -p "$1" 2>/dev/null)" != "declare -a"* ]]; then read -r -a "$1" <<< "${!1:-}"; fi; }
MODEL_BASE=${MODEL_BASE:-$MODEL_BASE_DEFAULT}
need MODEL_NAME "set it to the recipes' model (e.g. MODEL_NAME=qwen2.5-math-7b), or run benchmarks/reproduce_table1.sh / reproduce_figure3.sh, which set it"
need MODEL_BASE "set it to the base model, a hub id or a local path (e.g. MODEL_BASE=Qwen/Qwen2.5-Math-7B)"
as_array RUNS
need RUNS "set it to the runs to evaluate, space-separated (e.g. RUNS=\"psr nsr\"), from: ${RUN_NAMES[*]}"
as_array EVAL_FLAGS
need EVAL_FLAGS "set it to the protocol's python -m openrlhf_nsr.eval flags (e.g. EVAL_FLAGS=\"--template qwen --n 256\")"
PAPER=${PAPER:-}
if [ -n "$PAPER" ] && [[ " $PAPER_MODELS" != *" $PAPER "* ]]; then
  echo "$SELF: PAPER must be one of ${PAPER_MODELS% } (the paper's numbers) or unset, got '$PAPER'" >&2; exit 2
fi
OUT_NAME=${OUT_NAME:-$MODEL_NAME}

PYTHON=$(python_command "${PYTHON:-}")
BACKEND=${BACKEND:-vllm}
case "$BACKEND" in vllm | hf) ;; *) echo "$SELF: BACKEND must be vllm or hf, got '$BACKEND'" >&2; exit 2 ;; esac
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
  case " ${RUN_NAMES[*]} " in *" $name "*) ;; *) echo "$SELF: unknown run '$name' in RUNS: one of ${RUN_NAMES[*]}" >&2; exit 2 ;; esac
done
[ "$DRY" = 1 ] || mkdir -p "$OUT_DIR"

labels=() outs=() gpu=0
for name in base "${RUNS[@]}"; do
  model=$MODEL_BASE
  [ "$name" = base ] || model=$(final_model "$MODEL_NAME" "$name")
  command=("$PYTHON" -m openrlhf_nsr.eval --model "$model" --datasets "$DATASETS" "${EVAL_FLAGS[@]}"
           --backend "$BACKEND" --out "$OUT_DIR/$name" "${EXTRA[@]}")
  if [ "$name" != base ] && [ ! -d "$model" ]; then  # not trained (yet): skipped, in a dry run too
    skip="skip $name: no final model at $model (train it: bash $(recipe_of "$MODEL_NAME" "$name"))"
    if [ "$DRY" = 1 ]; then echo "# $skip; once trained: ${command[*]}"; else echo "$skip" >&2; fi
    continue
  fi
  launch "$gpu" "$OUT_DIR/$name.log" "${command[@]}"
  labels+=("$name") outs+=("$OUT_DIR/$name") gpu=$((gpu + 1))
done

failed=0
for i in "${!labels[@]}"; do
  rc=${rcs[$i]}
  if [ -n "${pids[$i]}" ]; then rc=0; wait "${pids[$i]}" || rc=$?; fi
  if [ "$rc" != 0 ]; then
    log=$OUT_DIR/${labels[$i]}.log last=$(tail -n 1 "$OUT_DIR/${labels[$i]}.log" 2>/dev/null || true)
    echo "evaluation of ${labels[$i]} failed (exit $rc): see $log${last:+ (its last line: $last)}" >&2; failed=1
  fi
done
if [ "$failed" = 1 ]; then
  echo "comparison skipped: an evaluation failed" >&2; exit 1
fi
# the run names are the labels: compare matches them to the paper's methods (w_reinforce: W-REINFORCE)
run "$PYTHON" -m openrlhf_nsr.eval compare "${outs[@]}" --labels "$(IFS=,; echo "${labels[*]}")" \
  ${PAPER:+--paper "$PAPER"} --out "$OUT_DIR/compare_passk.png"
