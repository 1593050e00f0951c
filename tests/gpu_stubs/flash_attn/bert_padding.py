"""CPU import stub: names imported by openrlhf.models.ring_attn_utils."""


def _unavailable(*args, **kwargs):
    raise RuntimeError("flash_attn is a CPU test stub; packing / ring attention need the real package")


index_first_axis = pad_input = rearrange = unpad_input = _unavailable
