# Qwen3-4B in non-thinking mode (paper §2): 32k context, the qwen3_no_thinking template.
# Reference: run_qwen3-4b_*.sh
[[ "${BASH_SOURCE[0]}" != "$0" ]] || { echo "recipes/qwen3-4b/model.sh is a settings file; run: bash recipes/qwen3-4b/<run>.sh (<run>: psr nsr w_reinforce reinforce grpo ppo)" >&2; exit 2; }
MODEL_DEFAULT=Qwen/Qwen3-4B
TEMPLATE=qwen3_no_thinking     # paper-spec §2 (prompt_template_type=qwen3_no_thinking)
VLLM_TP=2                      # reference: rollout.tensor_model_parallel_size=2
TRAIN_TOKENS_PER_GPU=48000     # reference: ppo_max_token_len_per_gpu=48000 (>= one 32,768-token sequence)
ROLLOUT_TOKENS_PER_GPU=64000   # reference: log_prob_max_token_len_per_gpu=64000
MODEL_ARGS=(
  --data.max_len 32768         # §2: prompt 1,024 + response 31,744 (max_response_length=31744)
  --rollout.max_new_tokens 31744
)
