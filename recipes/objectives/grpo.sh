# GRPO baseline (docs/paper.md §2): (r - group mean) / group std over the 8 samples, KL loss (k3) 1e-3.
[[ "${BASH_SOURCE[0]}" != "$0" ]] || { echo "recipes/objectives/grpo.sh is a settings file; run: bash recipes/<model>/grpo.sh (e.g. bash recipes/qwen2.5-math-7b/grpo.sh)" >&2; exit 2; }
RUN_ARGS=(
  --algo.advantage.estimator group_norm  # §2: group normalisation. OpenRLHF divides by (std + 1e-9), the paper by (std + 1e-6)
  --algo.kl.use_loss                     # §2: KL as a loss (actor.use_kl_loss=True)
  --algo.kl.init_coef 1e-3               # §2: KL coefficient 1e-3 (kl_loss_coef=0.001)
  --algo.kl.estimator k3                 # §2: k3 (kl_loss_type=low_var_kl)
)
