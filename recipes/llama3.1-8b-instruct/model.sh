# Llama-3.1-8B-Instruct (paper v2): 4k context, the llama template. The v2 paper gives no
# reference script for it: everything else is the Qwen2.5-Math-7B setup.
[[ "${BASH_SOURCE[0]}" != "$0" ]] || { echo "recipes/llama3.1-8b-instruct/model.sh is a settings file; run: bash recipes/llama3.1-8b-instruct/<run>.sh (<run>: psr nsr w_reinforce reinforce grpo ppo maxrl passk)" >&2; exit 2; }
MODEL_DEFAULT=meta-llama/Llama-3.1-8B-Instruct
TEMPLATE=llama                 # docs/paper.md §2: prompt template
VLLM_TP=2                      # as for Qwen2.5-Math-7B (an 8B model also fits TP=1)
MODEL_ARGS=(
  --data.max_len 4096          # paper v2: context 4,096 = prompt 1,024 + response 3,072
  --rollout.max_new_tokens 3072
)
