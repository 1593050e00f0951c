# PSR (docs/paper.md §1): learn only from correct samples, advantage +1.
[[ "${BASH_SOURCE[0]}" != "$0" ]] || { echo "recipes/objectives/psr.sh is a settings file; run: bash recipes/<model>/psr.sh (e.g. bash recipes/qwen2.5-math-7b/psr.sh)" >&2; exit 2; }
RUN_ARGS=(
  --algo.advantage.estimator psr
  --algo.advantage.ignored_samples drop  # §1: the reference code removes the incorrect samples from the batch
  --algo.kl.init_coef 0                  # §2: no KL, no reference model (kl_coef=0.0)
)
