# Where a run's data and outputs live: the one definition of the hand-off between the recipes
# (recipes/launch.sh) and the benchmarks (benchmarks/eval_checkpoints.sh), which both source this
# file. The convention is written down in recipes/README.md ("Where a run's model lives").
#
#   $CHECKPOINT_ROOT/<model>/<run>/ckpt    OpenRLHF's --ckpt.path (training checkpoints)
#   $CHECKPOINT_ROOT/<model>/<run>/final   OpenRLHF's --ckpt.output_dir (the final Hugging Face model)
#
# <run> is one of RUN_NAMES (the recipe's file name); the paper's labels (PSR, W-REINFORCE, ...) are
# display labels only. Every default is absolute, from this file's location (never the caller's
# directory); a relative path the user gives is made absolute against the directory they launch from.

[[ "${BASH_SOURCE[0]}" != "$0" ]] || { echo "recipes/paths.sh is a settings file; run: bash recipes/<model>/<run>.sh to train, bash benchmarks/reproduce_table1.sh to evaluate" >&2; exit 2; }
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN_NAMES=(psr nsr w_reinforce reinforce grpo ppo maxrl passk)

abs_path() { realpath -m -s -- "$1"; }   # abs_path PATH: absolute against the current directory, links kept
CHECKPOINT_ROOT=$(abs_path "${CHECKPOINT_ROOT:-$REPO_ROOT/checkpoints}")

run_dir() { echo "$CHECKPOINT_ROOT/$1/$2"; }          # run_dir MODEL RUN: one run's folder
run_ckpt() { echo "$1/ckpt"; }                        # run_ckpt RUN_DIR: its --ckpt.path
run_final() { echo "$1/final"; }                      # run_final RUN_DIR: its --ckpt.output_dir
final_model() { run_final "$(run_dir "$1" "$2")"; }   # final_model MODEL RUN: the model a benchmark evaluates
data_dir() { echo "$REPO_ROOT/data/$1"; }             # data_dir TEMPLATE: default prepared training data
recipe_of() { echo "recipes/$1/$2.sh"; }              # recipe_of MODEL RUN: the recipe that trains it

# python_command [PYTHON]: the interpreter given (a path made absolute, a bare name as is), else the
# repo's virtualenv when there is one, else python on PATH
python_command() {
  case "${1:-}" in
    "") if [ -x "$REPO_ROOT/.venv/bin/python" ]; then echo "$REPO_ROOT/.venv/bin/python"; else echo python; fi ;;
    */*) abs_path "$1" ;;
    *) echo "$1" ;;
  esac
}
# model_path_or_id NAME: a hub id as is, a local folder made absolute (it exists, or starts with / . ..)
model_path_or_id() {
  case "$1" in
    /* | ./* | ../*) abs_path "$1" ;;
    *) if [ -e "$1" ]; then abs_path "$1"; else echo "$1"; fi ;;
  esac
}
