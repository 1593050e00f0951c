# Qwen2.5-Math-7B (docs/paper.md §2): 4k context, the qwen template. Reference: run_qwen2.5-math-7b_*.sh
[[ "${BASH_SOURCE[0]}" != "$0" ]] || { echo "recipes/qwen2.5-math-7b/model.sh is a settings file; run: bash recipes/qwen2.5-math-7b/<run>.sh (<run>: psr nsr w_reinforce reinforce grpo ppo maxrl passk)" >&2; exit 2; }
MODEL_DEFAULT=Qwen/Qwen2.5-Math-7B
TEMPLATE=qwen                  # §2: prompt template
VLLM_TP=2                      # reference: rollout.tensor_model_parallel_size=2
MODEL_ARGS=(
  --data.max_len 4096          # §2: prompt 1,024 + response 3,072 (max_prompt_length=1024, max_response_length=3072)
  --rollout.max_new_tokens 3072
)
