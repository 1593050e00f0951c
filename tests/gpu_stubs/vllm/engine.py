"""The CPU stand-in's engines: ``AsyncLLMEngine`` (OpenRLHF's rollout actor) and ``LLM`` (offline).

Generation is plain transformers on CPU, one request at a time, with a KV cache. What it keeps of
vLLM's behaviour, because OpenRLHF depends on it:

- ``token_ids`` of an output end with the EOS token when generation stopped on it
  (``finish_reason`` "stop"), and ``text`` is decoded with ``skip_special_tokens``;
  ``finish_reason`` is "length" when ``max_tokens`` (or the context) ran out;
- ``logprobs=1`` gives, per generated token, ``{token_id: Logprob}`` of the sampled token, from the
  raw logits or, with ``logprobs_mode="processed_logprobs"``, after temperature / top-k / top-p;
- the worker extension (``worker_extension_cls``, OpenRLHF's ``WorkerWrap``) is mixed into the
  worker, which has ``device``, ``model_config.dtype`` and ``model_runner.model.load_weights``;
  ``collective_rpc`` calls its methods; a torch.distributed default group exists in the worker.

Reproducibility: every request samples from its own generator, seeded from the engine seed, the
weights' version, the prompt's tokens and how many times that prompt was already requested under
those weights. Concurrent requests arrive in any order; the samples do not depend on it.

Test evidence: with ``VLLM_STANDIN_LOG_DIR`` set, the engine appends JSON lines to
``engine-<seed>.jsonl`` there: ``{"event": "weights", "version", "sha256"}`` after each complete
weight sync (every parameter received; version 0 is the loaded checkpoint) and
``{"event": "generate", "version", "sha256", ...}`` per request, and saves the latest synced
weights as ``engine-<seed>-weights.safetensors``. A test reads them to prove that the engine
samples with the weights the trainer sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import torch

LOG_DIR_ENV = "VLLM_STANDIN_LOG_DIR"
# AsyncEngineArgs fields that OpenRLHF 0.11.2 passes (trainer/ray/vllm_engine.py) and the stand-in
# honours or can safely ignore (GPU memory, CUDA graphs, prefix cache, trust_remote_code).
_ENGINE_FIELDS = dict(
    model=None, seed=0, dtype="auto", tensor_parallel_size=1, max_model_len=None, worker_extension_cls=None,
    distributed_executor_backend=None, enforce_eager=False, enable_prefix_caching=False, trust_remote_code=False,
    gpu_memory_utilization=0.9, enable_sleep_mode=False, logprobs_mode=None, max_logprobs=20,
)  # fmt: skip


class AsyncEngineArgs:
    def __init__(self, **kwargs):
        unknown = set(kwargs) - set(_ENGINE_FIELDS)
        if unknown:
            raise TypeError(f"the vLLM stand-in does not implement AsyncEngineArgs({', '.join(sorted(unknown))})")
        self.__dict__.update({**_ENGINE_FIELDS, **kwargs})
        if self.tensor_parallel_size != 1:
            raise ValueError("the vLLM stand-in runs one engine per process: --vllm.tensor_parallel_size 1")
        if not self.model:
            raise ValueError("AsyncEngineArgs needs model=<path>")


@dataclass
class Logprob:
    logprob: float
    rank: Optional[int] = None
    decoded_token: Optional[str] = None


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: List[int]
    cumulative_logprob: Optional[float]
    logprobs: Optional[List[Dict[int, Logprob]]]
    finish_reason: str


@dataclass
class RequestOutput:
    request_id: str
    prompt: Optional[str]
    prompt_token_ids: List[int]
    outputs: List[CompletionOutput]
    finished: bool = True


@dataclass
class _ModelConfig:
    model: str
    dtype: torch.dtype
    max_model_len: int


class _StandinModel:
    """What vLLM's worker calls ``model_runner.model``: a transformers model with ``load_weights``."""

    def __init__(self, hf_model, on_complete):
        self.hf_model = hf_model
        self._params = dict(hf_model.named_parameters())  # tied weights appear once, as in OpenRLHF's sync
        self._pending = set(self._params)
        self._on_complete = on_complete

    def load_weights(self, weights):
        with torch.no_grad():
            for name, tensor in weights:
                if name not in self._params:
                    raise KeyError(f"the engine's model has no parameter {name!r}")
                target = self._params[name]
                if tuple(tensor.shape) != tuple(target.shape):
                    raise ValueError(f"{name}: shape {tuple(tensor.shape)} sent, {tuple(target.shape)} expected")
                target.copy_(tensor.to(target.dtype))
                self._pending.discard(name)
        if not self._pending:  # every parameter arrived: a new version of the weights
            self._pending = set(self._params)
            self._on_complete()


class _ModelRunner:
    def __init__(self, model):
        self.model = model


class _Worker:
    """vLLM's GPU worker, on CPU. The worker extension class is mixed in as in vLLM."""

    def __init__(self, args: AsyncEngineArgs, engine: "_Engine"):
        self.device = torch.device("cpu")
        self.model_config = _ModelConfig(args.model, engine.dtype, engine.max_model_len)
        self.model_runner = _ModelRunner(_StandinModel(engine.model, engine.weights_synced))
        _ensure_default_group()


def _ensure_default_group():
    """vLLM's worker runs inside a torch.distributed world of its tensor-parallel ranks (here one)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)


def _make_worker(args, engine):
    bases = (_Worker,)
    if args.worker_extension_cls:
        module_name, _, class_name = args.worker_extension_cls.rpartition(".")
        bases = (getattr(importlib.import_module(module_name), class_name),) + bases
    return type("StandinWorker", bases, {})(args, engine)


class _Engine:
    """The model, its tokenizer, the weights' version and the sampling loop (shared by both APIs)."""

    def __init__(self, args: AsyncEngineArgs):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.args = args
        self.seed = int(args.seed)
        self.dtype = torch.float32 if args.dtype in ("auto", "float32", None) else getattr(torch, str(args.dtype))
        self.tokenizer = AutoTokenizer.from_pretrained(args.model)
        self.model = AutoModelForCausalLM.from_pretrained(args.model, dtype=self.dtype).eval()
        config = self.model.config
        self.max_model_len = int(args.max_model_len or getattr(config, "max_position_embeddings", 2048))
        eos = self.model.generation_config.eos_token_id or self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
        self.version = 0
        self._occurrences: Dict[tuple, int] = {}
        self._lock = threading.Lock()
        self._log_dir = os.environ.get(LOG_DIR_ENV)
        self.sha256 = self._fingerprint()
        self._log({"event": "weights", "version": 0, "sha256": self.sha256})

    # ── weights ──

    def _fingerprint(self) -> str:
        digest = hashlib.sha256()
        for name, param in sorted(self.model.state_dict().items()):
            digest.update(name.encode())
            digest.update(param.detach().float().numpy().tobytes())
        return digest.hexdigest()

    def weights_synced(self) -> None:
        with self._lock:
            self.version += 1
            self._occurrences.clear()
            self.sha256 = self._fingerprint()
        self._log({"event": "weights", "version": self.version, "sha256": self.sha256})
        if self._log_dir:
            from safetensors.torch import save_file

            state = {k: v.detach().clone().contiguous() for k, v in self.model.state_dict().items()}
            save_file(state, os.path.join(self._log_dir, f"engine-{self.seed}-weights.safetensors"))

    def _log(self, record: dict) -> None:
        if self._log_dir:
            record = {"time": time.time(), "pid": os.getpid(), **record}
            with open(os.path.join(self._log_dir, f"engine-{self.seed}.jsonl"), "a") as f:
                f.write(json.dumps(record) + "\n")

    # ── sampling ──

    def request_seed(self, prompt_ids: List[int], explicit_seed: Optional[int]) -> int:
        if explicit_seed is not None:
            return int(explicit_seed)
        key = tuple(prompt_ids)
        with self._lock:
            occurrence = self._occurrences.get(key, 0)
            self._occurrences[key] = occurrence + 1
            version = self.version
        digest = hashlib.sha256(json.dumps([self.seed, version, list(key), occurrence]).encode()).digest()
        return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)

    @torch.no_grad()
    def sample(self, prompt_ids: List[int], params, seed: int, index: int = 0) -> CompletionOutput:
        generator = torch.Generator().manual_seed(seed)
        budget = self.max_model_len - len(prompt_ids)
        max_tokens = budget if params.max_tokens is None else min(int(params.max_tokens), budget)
        processed = (self.args.logprobs_mode or "").startswith("processed")
        tokens: List[int] = []
        logprobs: Optional[List[Dict[int, Logprob]]] = [] if params.logprobs is not None else None
        cumulative, finish_reason = 0.0, "length"
        input_ids, past = torch.tensor([prompt_ids]), None
        for step in range(max(max_tokens, 0)):
            out = self.model(input_ids=input_ids, past_key_values=past, use_cache=True)
            past = out.past_key_values
            raw = out.logits[0, -1].float()
            logits = raw.clone()
            if step < (params.min_tokens or 0):
                logits[list(self.eos_ids)] = float("-inf")
            if params.temperature <= 0:
                token = int(torch.argmax(logits))
                chosen = torch.log_softmax(logits, -1)
            else:
                logits = _top_k_top_p(logits / params.temperature, params.top_k, params.top_p)
                chosen = torch.log_softmax(logits, -1)
                token = int(torch.multinomial(chosen.exp(), 1, generator=generator))
            logprob = float((chosen if processed else torch.log_softmax(raw, -1))[token])
            cumulative += logprob
            tokens.append(token)
            if logprobs is not None:
                logprobs.append({token: Logprob(logprob, rank=1)})
            if token in self.eos_ids:
                finish_reason = "stop"
                break
            input_ids = torch.tensor([[token]])
        text = self.tokenizer.decode(tokens, skip_special_tokens=params.skip_special_tokens)
        return CompletionOutput(index, text, tokens, cumulative, logprobs, finish_reason)

    def run_request(
        self, prompt_ids: List[int], params, request_id: str, prompt: Optional[str] = None
    ) -> RequestOutput:
        if len(prompt_ids) >= self.max_model_len:
            raise ValueError(f"prompt of {len(prompt_ids)} tokens does not fit max_model_len {self.max_model_len}")
        base_seed = self.request_seed(prompt_ids, params.seed)
        outputs = [self.sample(prompt_ids, params, base_seed + i, i) for i in range(int(params.n))]
        self._log({
            "event": "generate", "version": self.version, "sha256": self.sha256, "prompt_tokens": len(prompt_ids),
            "seed": base_seed, "prompt": self.tokenizer.decode(prompt_ids),
            "output_tokens": [len(o.token_ids) for o in outputs], "finish_reasons": [o.finish_reason for o in outputs],
            "texts": [o.text for o in outputs],
        })  # fmt: skip
        return RequestOutput(request_id, prompt, list(prompt_ids), outputs)


def _top_k_top_p(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    if top_k and 0 < top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = torch.softmax(sorted_logits, -1).cumsum(-1)
        remove = cumulative - torch.softmax(sorted_logits, -1) >= top_p  # keep the smallest set reaching top_p
        logits = logits.masked_fill(torch.zeros_like(remove).scatter(0, order, remove), float("-inf"))
    return logits


class _OutputProcessor:
    def __init__(self):
        self.unfinished = 0

    def get_num_unfinished_requests(self) -> int:
        return self.unfinished


class AsyncLLMEngine:
    """vLLM's async engine, as OpenRLHF's ``RolloutRayActor`` drives it."""

    def __init__(self, args: AsyncEngineArgs):
        self._engine = _Engine(args)
        self._worker = _make_worker(args, self._engine)
        self.output_processor = _OutputProcessor()
        self._sleeping = False
        self._paused = False

    @classmethod
    def from_engine_args(cls, engine_args: AsyncEngineArgs) -> "AsyncLLMEngine":
        return cls(engine_args)

    async def generate(self, prompt, sampling_params, request_id: str):
        if self._sleeping:
            raise RuntimeError("generate() on a sleeping engine: wake_up() first")
        if isinstance(prompt, dict) and "prompt_token_ids" in prompt:
            prompt_ids, text = list(prompt["prompt_token_ids"]), None
            if prompt.get("multi_modal_data"):
                raise NotImplementedError("the vLLM stand-in is text-only")
        else:
            text = prompt if isinstance(prompt, str) else prompt["prompt"]
            prompt_ids = self._engine.tokenizer(text)["input_ids"]
        while self._paused:
            await asyncio.sleep(0.01)
        self.output_processor.unfinished += 1
        try:
            # Runs on the event loop: requests and weight updates never interleave mid-sequence.
            output = self._engine.run_request(prompt_ids, sampling_params, request_id, text)
        finally:
            self.output_processor.unfinished -= 1
        yield output

    async def collective_rpc(self, method: str, args=(), kwargs=None):
        return [getattr(self._worker, method)(*args, **(kwargs or {}))]

    async def is_sleeping(self) -> bool:
        return self._sleeping

    async def sleep(self, level: int = 1) -> None:
        self._sleeping = True

    async def wake_up(self, tags=None) -> None:
        self._sleeping = False

    async def reset_prefix_cache(self) -> None:
        pass

    async def pause_generation(self, mode: str = "keep") -> None:
        self._paused = True

    async def resume_generation(self) -> None:
        self._paused = False


class LLM:
    """vLLM's offline engine: ``LLM(model, ...).generate(prompts, sampling_params)``."""

    def __init__(self, model: str, tensor_parallel_size: int = 1, seed: int = 0, max_model_len: Optional[int] = None,
                 gpu_memory_utilization: float = 0.9, dtype: str = "auto", **kwargs: Any):  # fmt: skip
        args = AsyncEngineArgs(model=model, tensor_parallel_size=tensor_parallel_size, seed=seed,
                               max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization,
                               dtype=dtype, **kwargs)  # fmt: skip
        self._engine = _Engine(args)
        self._requests = 0

    def get_tokenizer(self):
        return self._engine.tokenizer

    def generate(self, prompts, sampling_params=None, use_tqdm: bool = True) -> List[RequestOutput]:
        from vllm import SamplingParams

        prompts = [prompts] if isinstance(prompts, (str, dict)) else list(prompts)
        params = sampling_params if sampling_params is not None else SamplingParams()
        params = list(params) if isinstance(params, (list, tuple)) else [params] * len(prompts)
        if len(params) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(params)} sampling params")
        outputs = []
        for prompt, p in zip(prompts, params):
            if isinstance(prompt, dict):
                ids, text = list(prompt["prompt_token_ids"]), None
            else:
                ids, text = self._engine.tokenizer(prompt)["input_ids"], prompt
            outputs.append(self._engine.run_request(ids, p, str(self._requests), text))
            self._requests += 1
        return outputs
