"""Let the wrapper CLI validate a command on a machine without vLLM / flash-attn.

OpenRLHF 0.11.2's CLI module imports vLLM and flash-attn at module level (through its trainer and
model modules) although parsing a command needs neither. ``python -m openrlhf_nsr.train_ppo_ray
--help`` and ``--dry_run`` must work anywhere (validating a command needs no GPU), so for those two
only, ``placeholders()`` serves the missing packages as empty modules whose every name is a
placeholder that refuses to be used. A real run never gets them: it needs the real packages and
``missing()`` names what to install.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from typing import List

from openrlhf_nsr.openrlhf_contract import INSTALL_OPENRLHF

GPU_PACKAGES = ("vllm", "flash_attn")
INSTALL = f"{INSTALL_OPENRLHF}  (vLLM and flash-attn, on a machine with CUDA)"


def missing() -> List[str]:
    """The GPU-only packages OpenRLHF imports that are not installed here."""
    return [name for name in GPU_PACKAGES if importlib.util.find_spec(name) is None]


class _Placeholder:
    def __init__(self, name: str):
        self._name = name

    def __call__(self, *args, **kwargs):
        raise RuntimeError(f"{self._name} is a placeholder: {self._name.split('.')[0]} is not installed ({INSTALL})")

    def __getattr__(self, name):
        return _Placeholder(f"{self._name}.{name}")

    def __mro_entries__(self, bases):  # `class X(placeholder)` at import time
        return (object,)


class _PlaceholderModule(types.ModuleType):
    __version__ = "0+placeholder"

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Placeholder(f"{self.__name__}.{name}")


class _Loader(importlib.abc.Loader):
    def create_module(self, spec):
        module = _PlaceholderModule(spec.name)
        module.__path__ = []  # a package: submodules resolve through the finder too
        return module

    def exec_module(self, module):
        pass


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, packages):
        self.packages = tuple(packages)

    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] in self.packages:
            return importlib.machinery.ModuleSpec(fullname, _Loader(), is_package=True)
        return None


@contextlib.contextmanager
def placeholders(packages):
    """Inside: ``import vllm`` / ``flash_attn`` (and their submodules) give placeholder modules."""
    finder = _Finder(packages)
    sys.meta_path.append(finder)  # last: a real install always wins
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in [m for m in sys.modules if m.split(".")[0] in finder.packages]:
            if isinstance(sys.modules[name], _PlaceholderModule):
                del sys.modules[name]
