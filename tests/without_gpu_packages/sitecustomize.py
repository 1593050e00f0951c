"""A machine without vLLM and flash-attn, in a process whose PYTHONPATH starts with this folder.

vLLM (its CPU build) is installed in the test environment, and flash-attn's stub is a folder of
tests/; tests/test_cli.py starts the wrapper with this folder first on PYTHONPATH to check what a
user without either gets. Python's path finder is asked for neither any more, so
``importlib.util.find_spec("vllm")`` is None and ``import vllm`` fails, as where it is not
installed; finders added later (openrlhf_nsr.gpu_imports' placeholders) still answer.
"""

import sys
from importlib.machinery import PathFinder

HIDDEN = ("vllm", "flash_attn")


class _PathFinderWithout(PathFinder):
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname.split(".")[0] in HIDDEN:
            return None
        return super().find_spec(fullname, path, target)


sys.meta_path[:] = [_PathFinderWithout if finder is PathFinder else finder for finder in sys.meta_path]
