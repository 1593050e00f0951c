# Pass@k training (Chen et al. 2025, arXiv 2508.10751; past the paper): the analytic pass@k advantages of
# each prompt group of N samples, c correct (RUCAIBox/Passk_Training code/passk_adv.py, calc_adv).
[[ "${BASH_SOURCE[0]}" != "$0" ]] || { echo "recipes/objectives/passk.sh is a settings file; run: bash recipes/<model>/passk.sh (e.g. bash recipes/qwen2.5-math-7b/passk.sh)" >&2; exit 2; }
RUN_ARGS=(
  --algo.advantage.estimator passk  # the analytic advantage of arXiv 2508.10751 (calc_adv); every sample in the token-mean, as calc_adv
  --algo.advantage.passk_k 4        # chosen here: half of the 8 samples per prompt (docs/paper.md §2); the objective needs 1 <= k < 8
  --algo.kl.init_coef 0             # chosen here: no KL, as the paper's objectives (docs/paper.md §2), a like-for-like comparison
)
