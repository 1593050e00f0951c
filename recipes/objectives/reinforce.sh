# REINFORCE with +1 / -1 rewards, no baseline: W-REINFORCE with lambda = 1 (docs/paper.md §1; the lambda ablation, §4).
[[ "${BASH_SOURCE[0]}" != "$0" ]] || { echo "recipes/objectives/reinforce.sh is a settings file; run: bash recipes/<model>/reinforce.sh (e.g. bash recipes/qwen2.5-math-7b/reinforce.sh)" >&2; exit 2; }
RUN_ARGS=(
  --algo.advantage.estimator w_reinforce
  --algo.advantage.w_reinforce_lambda 1  # §1: lambda = 1 is plain REINFORCE
  --algo.kl.init_coef 0                  # §2: no KL, as for the paper's objectives
)
