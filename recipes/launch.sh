#!/usr/bin/env bash
# The one launcher of the recipes. Every recipe, recipes/<model>/<run>.sh, runs
#
#   bash recipes/launch.sh <model> <run>      # e.g. bash recipes/launch.sh qwen3-4b nsr
#
# which, top to bottom: reads the settings files (they only set variables), checks that they set
# everything it needs (exit 2 naming what is missing), adds the paper's shared hyperparameters and
# the engine layout (below), then launches OpenRLHF (or, with DRY_RUN=1, only validates).
#   recipes/paths.sh             where a run's data and outputs live (shared with benchmarks/)
#   recipes/objectives/<run>.sh  RUN_ARGS: the objective's flags
#   recipes/<model>/model.sh     MODEL_DEFAULT, TEMPLATE, VLLM_TP, MODEL_ARGS: the model's settings
# The token budgets per GPU come from the GPU's memory (GPU_MEMORY_GB) and the model's shape, by the
# estimate of recipes/README.md ("Memory per GPU"): python -m openrlhf_nsr.memory.
#
# Outputs (recipes/paths.sh, recipes/README.md "Where a run's model lives"): OpenRLHF's checkpoints
# in $CHECKPOINT_ROOT/<model>/<run>/ckpt, the final Hugging Face model in .../<run>/final, which is
# where benchmarks/reproduce_*.sh look for it. Every default path is absolute, from the repo's
# location; relative paths given here are taken against the directory you launch from.
#
# Environment (all optional):
#   MODEL_PATH      hub id or local path of the starting model (default: the recipe's model)
#   DATA_DIR        train.jsonl / eval.jsonl written by `python -m openrlhf_nsr.prepare_data`
#                   (default <repo>/data/<template>; written from the hub on first use if missing;
#                   both files are checked to hold prompts in the model's template, exit 2 if not)
#   CHECKPOINT_ROOT root of every run's outputs (default <repo>/checkpoints)
#   OUTPUT_DIR      this run's folder, holding ckpt/ and final/ (default $CHECKPOINT_ROOT/<model>/<run>);
#                   the benchmarks will not find a run put elsewhere
#   NUM_NODES       nodes (default 1)            GPUS_PER_NODE  GPUs per node (default 8)
#   GPU_MEMORY_GB   memory of one GPU in GB (default 80: H100 / A100-80GB; 141: H200): the token budgets
#                   are the largest that fit by the estimate, and the run is refused if even one
#                   sequence does not (the error says what fits). 0: no check
#   TRAIN_TOKENS_PER_GPU / ROLLOUT_TOKENS_PER_GPU  set the budgets yourself instead
#   RAY_ADDRESS     submit to this Ray cluster with `ray job submit` (default: run here); openrlhf_nsr
#                   must be installed on every node, DATA_DIR / OUTPUT_DIR on storage they share
#   RAY_RUNTIME_ENV_JSON  a --runtime-env-json for `ray job submit` (e.g. {"py_modules": [...]})
#   WANDB_API_KEY   log to wandb (project openrlhf-nsr)
#   EXTRA_ARGS      more OpenRLHF flags, appended last
#   VLLM_SLEEP=0    leave out --vllm.enable_sleep (the engines keep their memory between phases): for a
#                   vLLM without sleep mode, e.g. its CPU build, which refuses it (make e2e)
#   DRY_RUN=1       validate the whole command with OpenRLHF 0.11.2's parser and the plugin's checks
#                   (paths, labels), print the steps, memory and disk estimates and the resolved config,
#                   and exit before Ray starts (no GPU needed; the data must be there)
#   PYTHON          interpreter (default <repo>/.venv/bin/python if there is one, else python; with
#                   RAY_ADDRESS, one that exists on the cluster's head node)
set -euo pipefail
RECIPES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$RECIPES_DIR/paths.sh"

# --- which run: <model> <run> --------------------------------------------------------------------
usage() {
  echo "recipes/launch.sh: ${1:-expected two arguments}" >&2
  echo "usage: bash recipes/launch.sh <model> <run>   (what bash recipes/<model>/<run>.sh runs)" >&2
  echo "  <model>: $(cd "$RECIPES_DIR" && ls -d -- */model.sh | sed 's,/model.sh,,' | xargs)" >&2
  echo "  <run>:   $(cd "$RECIPES_DIR/objectives" && ls -- *.sh | sed 's,\.sh$,,' | xargs)" >&2
  exit 2
}
[ $# -eq 2 ] || usage
MODEL=$1 RUN=$2
MODEL_FILE=recipes/$MODEL/model.sh RUN_FILE=recipes/objectives/$RUN.sh
[ -f "$RECIPES_DIR/$MODEL/model.sh" ] || usage "no model '$MODEL' ($MODEL_FILE does not exist)"
[ -f "$RECIPES_DIR/objectives/$RUN.sh" ] || usage "no run '$RUN' ($RUN_FILE does not exist)"

# --- settings: only these files set them (a value left in the environment does not count) --------
unset RUN_ARGS MODEL_DEFAULT TEMPLATE VLLM_TP MODEL_ARGS
source "$RECIPES_DIR/objectives/$RUN.sh"
source "$RECIPES_DIR/$MODEL/model.sh"

# require FILE KIND NAME...: FILE set each NAME, as KIND (a value, a positive integer, an array);
# else exit 2 naming it
require() {
  local file=$1 kind=$2 name
  shift 2
  for name in "$@"; do
    case $kind in
      "an array") [[ "$(declare -p "$name" 2>/dev/null)" == "declare -a"* ]] && continue ;;
      "a positive integer") [[ "${!name:-}" =~ ^[1-9][0-9]*$ ]] && continue ;;
      *) [ -n "${!name:-}" ] && continue ;;
    esac
    if [ -z "${!name+set}" ]; then
      echo "recipes/launch.sh: $name is not set: $file must set it ($kind)" >&2
    else
      echo "recipes/launch.sh: $name must be $kind, not '${!name}': $file sets it" >&2
    fi
    exit 2
  done
}
require "$RUN_FILE" "an array" RUN_ARGS
require "$MODEL_FILE" "a value" MODEL_DEFAULT TEMPLATE
require "$MODEL_FILE" "a positive integer" VLLM_TP
require "$MODEL_FILE" "an array" MODEL_ARGS

# --- the environment (listed above) and the command ----------------------------------------------
NUM_NODES=${NUM_NODES:-1}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
PYTHON=$(python_command "${PYTHON:-}")
MODEL_PATH=$(model_path_or_id "${MODEL_PATH:-$MODEL_DEFAULT}")
# absolute paths: a Ray job runs elsewhere, and the benchmarks must find the same folders
DATA_DIR=$(abs_path "${DATA_DIR:-$(data_dir "$TEMPLATE")}")
OUTPUT_DIR=$(abs_path "${OUTPUT_DIR:-$(run_dir "$MODEL" "$RUN")}")
GPUS=$((NUM_NODES * GPUS_PER_NODE))
GPU_MEMORY_GB=${GPU_MEMORY_GB:-80}
[[ "$GPU_MEMORY_GB" =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "recipes/launch.sh: GPU_MEMORY_GB must be the memory of one GPU in GB, a number (80 for an H100, 141 for an H200; 0: no check), not '$GPU_MEMORY_GB'" >&2; exit 2; }
if [ "$GPU_MEMORY_GB" = 0 ]; then  # no estimate, no check: the reference's budgets unless set
  TRAIN_TOKENS_PER_GPU=${TRAIN_TOKENS_PER_GPU:-48000} ROLLOUT_TOKENS_PER_GPU=${ROLLOUT_TOKENS_PER_GPU:-64000}
elif [ -z "${TRAIN_TOKENS_PER_GPU:-}" ] || [ -z "${ROLLOUT_TOKENS_PER_GPU:-}" ]; then
  # the largest budgets the estimate fits on one GPU (at most the reference's 48,000 / 64,000); one you set wins
  BUDGETS=$("$PYTHON" -m openrlhf_nsr.memory --model "$MODEL_PATH" --gpus "$GPUS" --gpu-memory-gb "$GPU_MEMORY_GB") || exit 2
  read -r FITTING_TRAIN FITTING_ROLLOUT <<<"$BUDGETS"
  TRAIN_TOKENS_PER_GPU=${TRAIN_TOKENS_PER_GPU:-$FITTING_TRAIN} ROLLOUT_TOKENS_PER_GPU=${ROLLOUT_TOKENS_PER_GPU:-$FITTING_ROLLOUT}
fi

# The paper's training setup (§N below = docs/paper.md §N, the paper's facts restated; reference: TianHongZXY/RLVR-Decomposed,
# run_qwen2.5-math-7b_psr_nsr.sh and verl/trainer/config/ppo_trainer.yaml), same for every model.
PAPER_ARGS=(
  --rollout.batch_size 1024            # §2: 1,024 prompts per rollout batch (data.train_batch_size=1024)
  --rollout.n_samples_per_prompt 8     # §2: 8 samples per prompt (rollout.n=8)
  --rollout.temperature 1.0            # §2: sampling temperature 1.0
  --rollout.top_p 1.0                  # §2: top-p 1.0
  --train.batch_size 2048              # §2: 256 prompts x 8 = 2,048 samples per optimiser step, 4 per rollout batch (ppo_mini_batch_size=256)
  --train.max_epochs 1                 # §2: one pass over each rollout batch (ppo_epochs: 1)
  --actor.adam.lr 1e-6                 # §2: lr 1e-6 (actor.optim.lr=1e-6)
  --actor.adam.betas 0.9 0.999         # reference: torch AdamW defaults (fsdp_workers.py); OpenRLHF's default is 0.9 0.95
  --actor.adam.weight_decay 0.01       # reference: weight_decay 1e-2 (fsdp_workers.py); OpenRLHF's default is 0
  --actor.lr_scheduler constant        # §2: constant lr (OpenRLHF's default is cosine_with_min_lr)
  --actor.lr_warmup_ratio 0            # reference: no warmup (verl lr_warmup_steps_ratio: 0)
  --actor.max_norm 1.0                 # §2: gradient clipping 1.0 (grad_clip: 1.0)
  --actor.eps_clip 0.2                 # §2: PPO clip 0.2 (clip_ratio: 0.2)
  --actor.entropy_coef 1e-4            # paper text: 1e-4. The reference config's default is 1e-3 (entropy_coeff: 0.001): a discrepancy
  --train.num_episodes 17              # §2: about 120 steps: 7,500 prompts // 1,024 = 7 rollout batches per pass x 17 = 119 steps
  --rollout.drop_last_batch            # reference: its dataloader drops the partial last batch (drop_last=True); OpenRLHF would train it (8 batches per pass, 136 steps)
  --eval.steps 7                       # §2: validation every 7 steps (trainer.test_freq=7)
  --eval.before_training               # reference: evaluates the starting model first (trainer.val_before_train, verl's default True)
  --eval.temperature 0                 # Figure 4a: greedy test accuracy
  --eval.n_samples_per_prompt 1        # greedy: one sample
  --ckpt.save_steps 7                  # reference: trainer.save_freq=7; resume with EXTRA_ARGS=--ckpt.load_enable
  --ckpt.max_num 2                     # disk: the last 2 DeepSpeed checkpoints (about 107 GB each for a 7B actor with its optimiser); the benchmarks read only final/
  --ckpt.best_metric_key none          # the paper reports the last step's model: no extra "best" checkpoint (OpenRLHF would pick a metric itself)
  --reward.remote_url math_verify      # §2: last \boxed{} vs the gold answer, 1 / 0 (openrlhf_nsr/reward.py)
  --data.input_key prompt              # openrlhf_nsr.prepare_data: the template is already applied
  --data.label_key answer
  --train.seed 42                      # OpenRLHF's default seed, explicit
)

# One node of 8 GPUs: every model and vLLM engine colocated and put to sleep in turn. More nodes:
# NUM_NODES scales actors and engines together (colocate_all needs engines x TP = actor GPUs).
# With --train.async_enable in EXTRA_ARGS, OpenRLHF colocates only the DeepSpeed models and refuses
# vLLM's sleep mode: the engines then take GPUs of their own, as many again as the actors (set
# GPUS_PER_NODE to half the node), and --vllm.enable_sleep is left out.
SLEEP_ARGS=(--vllm.enable_sleep)
if [[ " ${EXTRA_ARGS:-} " == *" --train.async_enable "* ]]; then
  SLEEP_ARGS=()
  for i in "${!PAPER_ARGS[@]}"; do  # the async trainer has no evaluation at step 0
    [ "${PAPER_ARGS[$i]}" = --eval.before_training ] && unset 'PAPER_ARGS[i]'
  done
  echo "recipes/launch.sh: --train.async_enable: vLLM engines on GPUs of their own, no vLLM sleep mode, no evaluation at step 0;" \
    "this run takes $((2 * GPUS_PER_NODE)) GPUs per node ($GPUS_PER_NODE for the actors, as many for the engines): on a node of" \
    "$GPUS_PER_NODE GPUs set GPUS_PER_NODE=$((GPUS_PER_NODE / 2))" >&2
elif [[ "${VLLM_SLEEP:-1}" == 0 ]]; then
  SLEEP_ARGS=()
  echo "recipes/launch.sh: VLLM_SLEEP=0: no vLLM sleep mode" >&2
fi
ENGINE_ARGS=(
  --actor.num_nodes "$NUM_NODES" --actor.num_gpus_per_node "$GPUS_PER_NODE"
  --ref.num_nodes "$NUM_NODES" --ref.num_gpus_per_node "$GPUS_PER_NODE"
  --critic.num_nodes "$NUM_NODES" --critic.num_gpus_per_node "$GPUS_PER_NODE"
  --vllm.num_engines $((GPUS / VLLM_TP)) --vllm.tensor_parallel_size "$VLLM_TP"
  --train.colocate_all "${SLEEP_ARGS[@]}" --ds.enable_sleep
  --vllm.gpu_memory_utilization 0.6    # room for the sleeping DeepSpeed states
  --ds.zero_stage 3 --ds.param_dtype bf16
  --actor.gradient_checkpointing_enable
  --ds.packing_samples                 # flash-attention varlen packing, no padding
  --train.dynamic_batch_enable         # micro-batches by tokens (reference: use_dynamic_bsz=True)
  --train.max_tokens_per_gpu "$TRAIN_TOKENS_PER_GPU"      # from GPU_MEMORY_GB (above); the reference's 48,000 is verl's on H200s
  --rollout.max_tokens_per_gpu "$ROLLOUT_TOKENS_PER_GPU"  # likewise; the reference's 64,000
  --gpu_memory_gb "$GPU_MEMORY_GB"     # refuse before Ray starts what the estimate says cannot fit
)

ARGS=(
  --actor.model_name_or_path "$MODEL_PATH"
  --data.prompt_dataset "$DATA_DIR/train.jsonl"
  --eval.dataset "$DATA_DIR/eval.jsonl"
  --ckpt.path "$(run_ckpt "$OUTPUT_DIR")" --ckpt.output_dir "$(run_final "$OUTPUT_DIR")"
  "${PAPER_ARGS[@]}" "${MODEL_ARGS[@]}" "${ENGINE_ARGS[@]}" "${RUN_ARGS[@]}"
)
if [ -n "${WANDB_API_KEY:-}" ]; then
  ARGS+=(--logger.wandb.key "$WANDB_API_KEY" --logger.wandb.project openrlhf-nsr --logger.wandb.run_name "$MODEL-$RUN")
fi
# shellcheck disable=SC2206
ARGS+=(${EXTRA_ARGS:-})

# --- the data: written from the hub where missing (a dry run only says how), then both files checked --
declare -A PREPARE=([train.jsonl]=math_train [eval.jsonl]=math,aime2025,amc23)
for file in train.jsonl eval.jsonl; do
  [ -f "$DATA_DIR/$file" ] && continue
  command=("$PYTHON" -m openrlhf_nsr.prepare_data --datasets "${PREPARE[$file]}" --template "$TEMPLATE" --out "$DATA_DIR/$file")
  offline="offline: set DATA_DIR to a folder holding train.jsonl and eval.jsonl for the $TEMPLATE template, or write $file from local copies (--datasets ${PREPARE[$file]%%,*}=/path/to/file.parquet,...)"
  if [ "${DRY_RUN:-0}" = 1 ]; then
    echo "recipes/launch.sh: DATA_DIR=$DATA_DIR has no $file; a real run writes it from the Hugging Face hub with:" >&2
    echo "  ${command[*]}" >&2
    echo "($offline)" >&2
    exit 2
  fi
  if ! why=$("${command[@]}" 2>&1 >/dev/null); then
    echo "recipes/launch.sh: DATA_DIR=$DATA_DIR has no $file and it could not be written from the hub: ${why##*error: }" >&2
    echo "($offline)" >&2
    exit 2
  fi
done
for file in train.jsonl eval.jsonl; do
  why=$("$PYTHON" -m openrlhf_nsr.prepare_data --check "$DATA_DIR/$file" --template "$TEMPLATE" 2>&1 >/dev/null) || {
    echo "recipes/launch.sh: DATA_DIR=$DATA_DIR is not data for $MODEL: $why; set DATA_DIR to a folder for the $TEMPLATE template (default $(data_dir "$TEMPLATE"))" >&2
    exit 2
  }
done

# --- launch (DRY_RUN=1: validate, print the estimates and the resolved config, stop) -------------
if [ "${DRY_RUN:-0}" = 1 ]; then
  exec "$PYTHON" -m openrlhf_nsr.train_ppo_ray "${ARGS[@]}" --dry_run
fi
mkdir -p "$OUTPUT_DIR"
if [ -n "${RAY_ADDRESS:-}" ]; then
  exec ray job submit --address "$RAY_ADDRESS" ${RAY_RUNTIME_ENV_JSON:+--runtime-env-json "$RAY_RUNTIME_ENV_JSON"} \
    -- "$PYTHON" -m openrlhf_nsr.train_ppo_ray "${ARGS[@]}"
fi
exec "$PYTHON" -m openrlhf_nsr.train_ppo_ray "${ARGS[@]}"
