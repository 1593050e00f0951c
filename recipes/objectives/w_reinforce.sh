# W-REINFORCE (paper §1): lambda * PSR + NSR, advantages +lambda / -1 on every sample.
RUN_ARGS=(
  --algo.advantage.estimator w_reinforce
  --algo.advantage.w_reinforce_lambda 0.1  # §4: lambda = 0.1 (positive_advantage_weight=0.1)
  --algo.kl.init_coef 0                    # §2: no KL, no reference model (kl_coef=0.0)
)
