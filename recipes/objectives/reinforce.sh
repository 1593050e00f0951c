# REINFORCE with +1 / -1 rewards, no baseline: W-REINFORCE with lambda = 1 (paper §1, lambda ablation).
RUN_ARGS=(
  --algo.advantage.estimator w_reinforce
  --algo.advantage.w_reinforce_lambda 1  # §1: lambda = 1 is plain REINFORCE
  --algo.kl.init_coef 0                  # §2: no KL, as for the paper's objectives
)
