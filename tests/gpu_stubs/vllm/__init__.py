"""CPU import stub for vllm (CUDA-only). See ../README.md."""
__version__ = "0.0.0+cpu-stub"


class SamplingParams:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)
