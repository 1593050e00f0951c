# NSR (docs/paper.md §1): learn only from incorrect samples, advantage -1.
[[ "${BASH_SOURCE[0]}" != "$0" ]] || { echo "recipes/objectives/nsr.sh is a settings file; run: bash recipes/<model>/nsr.sh (e.g. bash recipes/qwen2.5-math-7b/nsr.sh)" >&2; exit 2; }
RUN_ARGS=(
  --algo.advantage.estimator nsr
  --algo.advantage.ignored_samples drop  # §1: the reference code removes the correct samples from the batch
  --algo.kl.init_coef 0                  # §2: no KL, no reference model (kl_coef=0.0)
)
