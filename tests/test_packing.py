"""OpenRLHF's packed forward runs on CPU and equals the padded one.

The recipes train with ``--ds.packing_samples``: ``Actor.forward`` removes the padding, lays the
batch's sequences end to end in one row with position ids restarting at each sequence, runs the
model with no attention mask, and pads the log-probs and entropy back. OpenRLHF asks for
flash-attention 2 there; transformers' ``sdpa`` and ``eager`` attention find the sequence
boundaries from the restarting position ids when no cache is used (``masking_utils.
find_packed_sequence_indices``), which is what lets the e2e train packed on CPU. The padding
helpers are flash-attn's, taken from transformers (tests/gpu_stubs/flash_attn/bert_padding.py).
"""

import pytest
import torch
from openrlhf.models import Actor
from transformers import Qwen2Config, Qwen2ForCausalLM


def actor(attn_implementation, packing):
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=48, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=64, use_cache=False,
    )  # fmt: skip
    model = Qwen2ForCausalLM(config).eval()
    model.config._attn_implementation = attn_implementation
    wrapped = Actor(model)
    wrapped.packing_samples = packing  # Actor(nn.Module) leaves it unset (only Actor(path) sets it)
    return wrapped


def left_padded_batch():
    """Three sequences of different lengths, left-padded as OpenRLHF's experiences are, and their
    response masks (the last 4 positions of each row; a shorter response is right-padded)."""
    torch.manual_seed(1)
    lengths, width = [9, 5, 12], 12
    sequences = torch.zeros(len(lengths), width, dtype=torch.long)
    attention_mask = torch.zeros_like(sequences)
    for row, length in enumerate(lengths):
        sequences[row, width - length :] = torch.randint(1, 48, (length,))
        attention_mask[row, width - length :] = 1
    action_mask = torch.ones(len(lengths), 4, dtype=torch.bool)
    action_mask[1, -1] = False
    sequences[1, -1], attention_mask[1, -1] = 0, 0  # right padding after a short response
    return sequences, attention_mask, action_mask


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_packed_forward_gives_the_padded_log_probs_and_entropy(attn_implementation):
    sequences, attention_mask, action_mask = left_padded_batch()
    outputs = {}
    for packing in (False, True):
        log_probs, output = actor(attn_implementation, packing)(
            sequences, action_mask, attention_mask=attention_mask, return_output=True, return_entropy=True
        )
        entropy = output.entropy[:, -action_mask.shape[1] :]
        outputs[packing] = (log_probs * action_mask, entropy * action_mask)
    for padded, packed in zip(outputs[False], outputs[True]):
        torch.testing.assert_close(packed, padded, rtol=1e-5, atol=1e-5)
    assert outputs[True][0][action_mask].abs().min() > 0  # real log-probs, not zeros


def test_packing_without_restarting_positions_would_differ():
    """The check above can fail: one long row without sequence boundaries attends across sequences."""
    sequences, attention_mask, action_mask = left_padded_batch()
    model = actor("sdpa", False).model
    tokens = sequences[attention_mask.bool()].unsqueeze(0)
    restarting = torch.cat([torch.arange(int(n)) for n in attention_mask.sum(-1)]).unsqueeze(0)
    with torch.no_grad():
        boundaries = model(tokens, position_ids=restarting).logits
        running = model(tokens, position_ids=torch.arange(tokens.shape[1]).unsqueeze(0)).logits
    assert (boundaries - running).abs().max() > 1e-2
