"""CPU import stub for flash_attn (CUDA-only). See ../README.md."""

__version__ = "0.0.0+cpu-stub"
