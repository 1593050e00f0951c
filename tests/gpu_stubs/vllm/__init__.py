"""CPU stand-in for the part of vLLM 0.29 that OpenRLHF 0.11.2 and openrlhf_nsr.eval use. Tests only.

Importing it is cheap (no torch): OpenRLHF imports vllm at module level everywhere, and most
tests only need the names. The engine (``AsyncEngineArgs``, ``AsyncLLMEngine``, offline ``LLM``)
lives in ``vllm.engine`` and generates with transformers on CPU; the weight-sync group
(``vllm.distributed``) is a plain gloo group. See ../README.md for what is covered.
"""

__version__ = "0.29.0+cpu.standin"  # openrlhf 0.11.2 pins vllm==0.29.0 and asserts a version > 0.8.5

_ENGINE_NAMES = ("AsyncEngineArgs", "AsyncLLMEngine", "LLM")


class SamplingParams:
    """vLLM's sampling parameters, the fields OpenRLHF and openrlhf_nsr.eval set (others refused)."""

    _DEFAULTS = dict(
        n=1, temperature=1.0, top_p=1.0, top_k=0, max_tokens=16, min_tokens=0, seed=None, logprobs=None,
        skip_special_tokens=True, repetition_penalty=1.0,
    )  # fmt: skip

    def __init__(self, **kwargs):
        unknown = set(kwargs) - set(self._DEFAULTS)
        if unknown:
            raise TypeError(f"the vLLM stand-in does not implement SamplingParams({', '.join(sorted(unknown))})")
        self.__dict__.update({**self._DEFAULTS, **kwargs})
        if self.repetition_penalty != 1.0:
            raise ValueError("the vLLM stand-in samples without repetition penalty")

    def __repr__(self):
        return f"SamplingParams({', '.join(f'{k}={v!r}' for k, v in self.__dict__.items())})"


def __getattr__(name):
    if name in _ENGINE_NAMES:
        from vllm import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'vllm' (CPU stand-in) has no attribute {name!r}")
