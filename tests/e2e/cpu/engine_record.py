"""Test evidence from the real vLLM engine: which weights it holds and which weights sampled each request.

Installed with the CPU layer (sitecustomize.py) in every process of an e2e run where
``OPENRLHF_NSR_ENGINE_LOG_DIR`` is set; it acts only in vLLM's worker process, the process that
holds the engine's model. There it appends JSON lines to ``engine-<pid>.jsonl``:

- ``{"event": "weights", "version", "sha256"}``: version 0 when OpenRLHF sets up the weight-sync group
  (the checkpoint the engine loaded), then one per complete sync. A sync is complete at OpenRLHF's
  last ``update_weight`` call of a broadcast, the one with ``empty_cache=True``
  (trainer/ray/ppo_actor.py, ``broadcast_to_vllm``: ``empty_cache=count == num_params``). The
  fingerprint is a sha256 of the engine model's own state dict (vLLM's parameter names, e.g. the
  fused ``qkv_proj``), and that state dict is saved as ``engine-<pid>-weights.safetensors``
  (the latest sync's).
- ``{"event": "generate", "version", "sha256", "request_id"}``: each request when vLLM's scheduler
  first hands it to the worker (``execute_model`` with it among the new requests), i.e. the weights
  its sampling started with.

Nothing here changes what the engine or OpenRLHF computes: it reads the model after OpenRLHF's own
calls return.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading

LOG_DIR_ENV = "OPENRLHF_NSR_ENGINE_LOG_DIR"
_lock = threading.Lock()


def _log(record: dict) -> None:
    folder = os.environ[LOG_DIR_ENV]
    with _lock, open(os.path.join(folder, f"engine-{os.getpid()}.jsonl"), "a") as log:
        log.write(json.dumps(record) + "\n")


def _state(worker) -> dict:
    model = worker.model_runner.model
    # cloned: vLLM ties lm_head to the embedding, and safetensors refuses tensors that share memory
    return {name: tensor.detach().to("cpu").clone().contiguous() for name, tensor in model.state_dict().items()}


def _fingerprint(state: dict) -> str:
    import torch

    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _record_weights(worker, version: int) -> None:
    from safetensors.torch import save_file

    state = _state(worker)
    worker._nsr_engine_version, worker._nsr_engine_sha256 = version, _fingerprint(state)
    save_file(state, os.path.join(os.environ[LOG_DIR_ENV], f"engine-{os.getpid()}-weights.safetensors"))
    _log({"event": "weights", "pid": os.getpid(), "version": version, "sha256": worker._nsr_engine_sha256})


def _patch_worker_wrap(module) -> None:
    init_process_group, update_weight = module.WorkerWrap.init_process_group, module.WorkerWrap.update_weight

    @functools.wraps(init_process_group)
    def init_process_group_recorded(self, *args, **kwargs):
        result = init_process_group(self, *args, **kwargs)
        _record_weights(self, 0)
        return result

    @functools.wraps(update_weight)
    def update_weight_recorded(self, name, dtype, shape, empty_cache=False):
        result = update_weight(self, name, dtype, shape, empty_cache)
        if empty_cache:  # OpenRLHF's last parameter of this broadcast: the sync is complete
            _record_weights(self, self._nsr_engine_version + 1)
        return result

    module.WorkerWrap.init_process_group = init_process_group_recorded
    module.WorkerWrap.update_weight = update_weight_recorded


def _patch_cpu_worker(module) -> None:
    execute_model = module.CPUWorker.execute_model

    @functools.wraps(execute_model)
    def execute_model_recorded(self, scheduler_output, *args, **kwargs):
        version = getattr(self, "_nsr_engine_version", None)
        if version is not None:  # the weights are tracked once OpenRLHF set up the sync group
            for request in getattr(scheduler_output, "scheduled_new_reqs", None) or []:
                _log({"event": "generate", "pid": os.getpid(), "version": version,
                      "sha256": self._nsr_engine_sha256, "request_id": request.req_id})  # fmt: skip
        return execute_model(self, scheduler_output, *args, **kwargs)

    module.CPUWorker.execute_model = execute_model_recorded


PATCHES = {
    "openrlhf.trainer.ray.vllm_worker_wrap": _patch_worker_wrap,
    "vllm.v1.worker.cpu_worker": _patch_cpu_worker,
}
