# W-REINFORCE (docs/paper.md §1): lambda * PSR + NSR, advantages +lambda / -1 on every sample.
[[ "${BASH_SOURCE[0]}" != "$0" ]] || { echo "recipes/objectives/w_reinforce.sh is a settings file; run: bash recipes/<model>/w_reinforce.sh (e.g. bash recipes/qwen2.5-math-7b/w_reinforce.sh)" >&2; exit 2; }
RUN_ARGS=(
  --algo.advantage.estimator w_reinforce
  --algo.advantage.w_reinforce_lambda 0.1  # §1: lambda = 0.1 (positive_advantage_weight=0.1)
  --algo.kl.init_coef 0                    # §2: no KL, no reference model (kl_coef=0.0)
)
