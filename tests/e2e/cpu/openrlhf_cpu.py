"""Test-only CPU compatibility layer: OpenRLHF 0.11.2's unconditional CUDA calls, answered on CPU,
and the NCCL communicator of its weight sync, replaced by the same broadcast over gloo.

Installed in every process of an end-to-end run by ``sitecustomize.py`` next to this file (the
run puts this folder on PYTHONPATH and sets ``OPENRLHF_NSR_CPU_COMPAT=1``). Nothing else of
OpenRLHF changes: each patch below answers one OpenRLHF line that calls CUDA whatever the
device, and is applied right after that module is imported.

| OpenRLHF 0.11.2 line (openrlhf/...)                          | call                                 | on CPU            |
|--------------------------------------------------------------|--------------------------------------|-------------------|
| utils/deepspeed/deepspeed.py:97 (setup_distributed)          | torch.cuda.set_device(local_rank)    | no-op             |
| utils/deepspeed/deepspeed.py:105-106 (setup_distributed)     | init_device_mesh("cuda", ...)        | "cpu" mesh        |
| utils/deepspeed/deepspeed.py:614, 633-634 (all_reduce/gather) | .to(torch.cuda.current_device())    | "cpu"             |
| trainer/ray/ppo_actor.py:148 (_init_vllm_sync_group)         | torch.cuda.current_device()          | "cpu"             |
| trainer/ray/ppo_actor.py:171, 627 (ppo_train, forward)       | torch.cuda.current_device()          | "cpu"             |
| trainer/ray/ppo_actor.py:436 (broadcast_to_vllm)             | torch.cuda.current_stream()          | None              |
| trainer/ray/ppo_actor.py:605 (PolicyModelActor.fit)          | torch.cuda.synchronize()             | no-op             |
| trainer/ray/launcher.py:65, 136, 190 (empty_cache, forward)  | synchronize / current_device         | no-op / "cpu"     |
| trainer/ppo_utils/replay_buffer.py:40 (NaiveReplayBuffer)    | torch.device(f"cuda:{current_device()}") | cpu device    |
| utils/distributed_util.py:10 (torch_dist_barrier_and_cuda_sync) | torch.cuda.synchronize()          | barrier only      |
| trainer/ray/vllm_worker_wrap.py:40, 45 (WorkerWrap.update_weight) | torch.empty(device="cuda"), current_stream() | cpu, None |
| utils/deepspeed/deepspeed_utils.py:151, 192 (offload_ / reload_deepspeed_states) | DeepSpeed's offload_states / reload_states to "cpu" | no-op |
| cli/train_ppo_ray.py:699-704 -> models/actor.py:79 (Actor)   | attn_implementation="flash_attention_2" with packing | "sdpa"  |
| utils/distributed_util.py:21-26 (stateless_init_process_group) | vLLM's PyNcclCommunicator (NCCL) | the same broadcast over gloo |

In the modules of the first rows, the name ``torch`` is rebound to a view of torch whose ``cuda``
answers those four calls on CPU (everything else is the real torch). The last two import torch
inside the function, so the function itself is wrapped. Without that patch the weight
broadcast hangs: the engine's error only surfaces after the actor has entered the collective.
The weight sync: OpenRLHF builds vLLM's ``StatelessProcessGroup`` (real, vLLM 0.29.0) and a
``PyNcclCommunicator`` on it whatever ``--vllm.sync_backend`` says; NCCL needs GPUs, so
``GlooCommunicator`` gives its one call, ``broadcast``, over gloo on the group's own store (the
trainer's rank 0 and the engines' workers both import it from vLLM at call time). With
``--ds.packing_samples`` OpenRLHF sets flash-attention 2 whatever was asked
(CUDA only). transformers' ``sdpa`` attention gives the same block-diagonal attention for packed
rows (position ids restarting per sequence, no mask, no cache: tests/test_packing.py), so the
actor and reference models load with it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.abc
import sys
import threading
import types

ENV = "OPENRLHF_NSR_CPU_COMPAT"


class _CudaOnCpu:
    """``torch.cuda`` for one module: the CUDA calls OpenRLHF makes unconditionally, on CPU."""

    def __init__(self, cuda):
        self._cuda = cuda

    def __getattr__(self, name):
        return getattr(self._cuda, name)

    @staticmethod
    def set_device(device):
        pass

    @staticmethod
    def synchronize(device=None):
        pass

    @staticmethod
    def current_device():
        return "cpu"

    @staticmethod
    def current_stream(device=None):
        return None


class _TorchOnCpu(types.ModuleType):
    """``torch`` as one OpenRLHF module sees it: real, but for ``cuda`` and ``device("cuda...")``."""

    def __init__(self, torch):
        super().__init__("torch")
        self._torch = torch
        self.cuda = _CudaOnCpu(torch.cuda)

    def __getattr__(self, name):
        return getattr(self._torch, name)

    def device(self, *args, **kwargs):
        if args and str(args[0]).startswith("cuda"):
            return self._torch.device("cpu")
        return self._torch.device(*args, **kwargs)

    def __reduce__(self):  # Ray pickles actor classes by value, with their functions' globals
        return (torch_on_cpu, ())


@functools.lru_cache(maxsize=None)
def torch_on_cpu() -> _TorchOnCpu:
    import torch

    return _TorchOnCpu(torch)


def _rebind_torch(module) -> None:
    module.torch = torch_on_cpu()


def _patch_deepspeed_strategy(module) -> None:
    _rebind_torch(module)
    init_device_mesh = module.init_device_mesh

    @functools.wraps(init_device_mesh)
    def init_device_mesh_on_cpu(device_type, *args, **kwargs):
        return init_device_mesh("cpu" if device_type == "cuda" else device_type, *args, **kwargs)

    module.init_device_mesh = init_device_mesh_on_cpu


def _patch_distributed_util(module) -> None:
    @functools.wraps(module.torch_dist_barrier_and_cuda_sync)
    def torch_dist_barrier_and_cuda_sync():
        import torch

        torch.distributed.barrier()

    module.torch_dist_barrier_and_cuda_sync = torch_dist_barrier_and_cuda_sync


_cuda_to_cpu_lock = threading.Lock()


@contextlib.contextmanager
def _cuda_tensors_on_cpu():
    """Inside: ``torch.empty(..., device="cuda")`` allocates on CPU, ``current_stream()`` is None."""
    import torch

    with _cuda_to_cpu_lock:
        empty, current_stream = torch.empty, torch.cuda.current_stream

        def cpu_empty(*args, device=None, **kwargs):
            if device is not None and str(device).startswith("cuda"):
                device = "cpu"
            return empty(*args, device=device, **kwargs)

        torch.empty, torch.cuda.current_stream = cpu_empty, lambda device=None: None
        try:
            yield
        finally:
            torch.empty, torch.cuda.current_stream = empty, current_stream


def _patch_deepspeed_utils(module) -> None:
    """``--ds.enable_sleep`` moves the DeepSpeed states to CPU memory between phases; on a CPU machine
    they are there already, and DeepSpeed 0.19.6's ZeRO-3 ``offload_states`` to "cpu" then makes the
    next forward pass of 2 data-parallel ranks return NaN now and then (2 of 5 runs here; never with
    the offload left out). OpenRLHF still makes every sleep / wake-up call; the moves are no-ops."""

    def offload_deepspeed_states(model, pin_memory=True, non_blocking=True):
        pass

    def reload_deepspeed_states(model, non_blocking=True):
        pass

    module.offload_deepspeed_states = offload_deepspeed_states
    module.reload_deepspeed_states = reload_deepspeed_states


def _patch_worker_wrap(module) -> None:
    original = module.WorkerWrap.update_weight

    @functools.wraps(original)
    def update_weight(self, *args, **kwargs):
        with _cuda_tensors_on_cpu():
            return original(self, *args, **kwargs)

    module.WorkerWrap.update_weight = update_weight


class GlooCommunicator:
    """vLLM's ``PyNcclCommunicator`` as OpenRLHF's weight sync uses it (``broadcast`` from the
    DeepSpeed rank 0 to the engines), over gloo on the same ``StatelessProcessGroup``'s store."""

    def __init__(self, group, device=None):
        import torch.distributed as dist

        self.rank, self.world_size, self.device = group.rank, group.world_size, device
        self._pg = dist.ProcessGroupGloo(dist.PrefixStore("openrlhf_nsr_gloo", group.store), group.rank,
                                         group.world_size)  # fmt: skip

    def broadcast(self, tensor, src: int, stream=None) -> None:
        import torch.distributed as dist

        options = dist.BroadcastOptions()
        options.rootRank = src
        buffer = tensor.data if tensor.is_contiguous() else tensor.data.contiguous()
        self._pg.broadcast([buffer], options).wait()
        if buffer is not tensor.data:
            tensor.data.copy_(buffer)


def _patch_pynccl(module) -> None:
    module.PyNcclCommunicator = GlooCommunicator


def _patch_actor_attention(module) -> None:
    original = module.Actor.__init__

    @functools.wraps(original)
    def __init__(self, *args, attn_implementation="flash_attention_2", **kwargs):
        if str(attn_implementation).startswith("flash_attention"):
            attn_implementation = "sdpa"
        original(self, *args, attn_implementation=attn_implementation, **kwargs)

    module.Actor.__init__ = __init__


PATCHES = {
    "openrlhf.utils.deepspeed.deepspeed_utils": _patch_deepspeed_utils,
    "openrlhf.models.actor": _patch_actor_attention,
    "openrlhf.utils.deepspeed.deepspeed": _patch_deepspeed_strategy,
    "openrlhf.trainer.ray.ppo_actor": _rebind_torch,
    "openrlhf.trainer.ray.launcher": _rebind_torch,
    "openrlhf.trainer.ppo_utils.replay_buffer": _rebind_torch,
    "openrlhf.utils.distributed_util": _patch_distributed_util,
    "openrlhf.trainer.ray.vllm_worker_wrap": _patch_worker_wrap,
    "vllm.distributed.device_communicators.pynccl": _patch_pynccl,
}


class _Loader(importlib.abc.Loader):
    def __init__(self, loader, patches):
        self.loader, self.patches = loader, patches

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        for patch in self.patches:
            patch(module)

    def __getattr__(self, name):
        return getattr(self.loader, name)


class _Finder(importlib.abc.MetaPathFinder):
    """Patches the modules of PATCHES (then those of ``extra``) right after import; asks the finders
    after it for the spec, so other post-import hooks (openrlhf_nsr's own) still apply."""

    def __init__(self, extra):
        self.patches = {name: [patch] for name, patch in PATCHES.items()}
        for name, patch in extra.items():
            self.patches.setdefault(name, []).append(patch)

    def find_spec(self, fullname, path, target=None):
        patches = self.patches.get(fullname)
        if patches is None:
            return None
        later = sys.meta_path[next(i for i, f in enumerate(sys.meta_path) if f is self) + 1 :]
        for finder in later:
            spec = finder.find_spec(fullname, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _Loader(spec.loader, patches)
                return spec
        return None


def install(extra=None) -> None:
    """``extra``: more post-import patches ({module: function}), applied after the CPU layer's own."""
    extra = extra or {}
    already = [name for name in {**PATCHES, **extra} if name in sys.modules]
    if already:
        raise RuntimeError(f"install the CPU layer before OpenRLHF is imported; already imported: {already}")
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder(extra))
