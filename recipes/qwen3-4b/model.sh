# Qwen3-4B in non-thinking mode (docs/paper.md §2): 32k context, the qwen3_no_thinking template.
# Reference: run_qwen3-4b_*.sh
[[ "${BASH_SOURCE[0]}" != "$0" ]] || { echo "recipes/qwen3-4b/model.sh is a settings file; run: bash recipes/qwen3-4b/<run>.sh (<run>: psr nsr w_reinforce reinforce grpo ppo maxrl passk)" >&2; exit 2; }
MODEL_DEFAULT=Qwen/Qwen3-4B
TEMPLATE=qwen3_no_thinking     # §2 (prompt_template_type=qwen3_no_thinking)
VLLM_TP=2                      # reference: rollout.tensor_model_parallel_size=2
MODEL_ARGS=(
  --data.max_len 32768         # §2: prompt 1,024 + response 31,744 (max_response_length=31744)
  --rollout.max_new_tokens 31744
  # One 32,768-token sequence needs about 167 GB of one GPU to train in OpenRLHF's actor (fp32 logits and
  # entropy over a 152k vocabulary: recipes/README.md "Memory per GPU"), more than an H200 has: ring attention
  # splits each sequence over 4 GPUs (about 54 GB each). Needs `pip install ring_flash_attn`; nsr / psr then
  # mask the samples they ignore instead of removing them (same update, more compute). Not in the paper (verl).
  --ds.ring_attn_size 4
)
