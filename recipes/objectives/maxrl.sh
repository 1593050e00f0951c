# MaxRL (Tajwar et al. 2026, arXiv 2602.02710; past the paper): per prompt group, (r - mean) / (mean + 1e-6):
# a correct sample (1 - p) / p, an incorrect one about -1, a group with no correct sample 0.
[[ "${BASH_SOURCE[0]}" != "$0" ]] || { echo "recipes/objectives/maxrl.sh is a settings file; run: bash recipes/<model>/maxrl.sh (e.g. bash recipes/qwen2.5-math-7b/maxrl.sh)" >&2; exit 2; }
RUN_ARGS=(
  --algo.advantage.estimator maxrl  # the advantage of tajwarfahim/maxrl verl/trainer/ppo/core_algos.py; every sample in the token-mean
  --algo.kl.init_coef 0             # chosen here, not MaxRL's: no KL, as the paper's objectives (docs/paper.md §2), a like-for-like comparison
)
