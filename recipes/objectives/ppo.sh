# PPO baseline (docs/paper.md §2): GAE with a critic, whitened advantages, in-reward KL 1e-3.
[[ "${BASH_SOURCE[0]}" != "$0" ]] || { echo "recipes/objectives/ppo.sh is a settings file; run: bash recipes/<model>/ppo.sh (e.g. bash recipes/qwen2.5-math-7b/ppo.sh)" >&2; exit 2; }
RUN_ARGS=(
  --algo.advantage.estimator gae         # §2: GAE; OpenRLHF whitens its advantages (mean and std), as the paper
  --algo.advantage.gamma 1               # §2: gamma = 1
  --algo.advantage.lambd 1               # §2: lambda = 1
  --critic.adam.lr 1e-5                  # §2: critic lr 1e-5 (critic.optim.lr=1e-5); critic = the policy's model
  --critic.adam.betas 0.9 0.999          # reference: torch AdamW defaults (fsdp_workers.py)
  --critic.adam.weight_decay 0.01        # reference: weight_decay 1e-2 (fsdp_workers.py)
  --critic.lr_scheduler constant         # reference: constant critic lr
  --critic.lr_warmup_ratio 0             # reference: no warmup; trainer.critic_warmup=0 (OpenRLHF: no critic.freezing_steps)
  --algo.kl.init_coef 1e-3               # §2: in-reward KL 1e-3 (kl_ctrl.kl_coef=0.001)
  --algo.kl.estimator k1                 # in-reward KL: k1 (verl's default kl_penalty: kl)
)
