"""flash_attn.bert_padding on CPU: the padding helpers OpenRLHF's packing uses (models/ring_attn_utils.py).

flash-attn's own versions are pure PyTorch but live in a package that cannot be imported without its
CUDA extension. transformers ships the same helpers for attention backends that lack them
(``modeling_flash_attention_utils``): ``unpad_input`` and ``pad_input`` are those; ``index_first_axis``
is flash-attn's ``input[indices]`` on an already flattened first axis (transformers' variant flattens
two axes itself, so it is not the same function); ``rearrange`` is einops', as flash-attn imports it.
"""

from einops import rearrange
from transformers.modeling_flash_attention_utils import _pad_input as pad_input
from transformers.modeling_flash_attention_utils import _unpad_input as unpad_input


def index_first_axis(input, indices):
    return input[indices]


__all__ = ["index_first_axis", "pad_input", "rearrange", "unpad_input"]
