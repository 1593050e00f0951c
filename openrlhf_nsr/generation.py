"""Sampling backends for evaluation: vLLM on GPU, HF transformers on CPU (small models).

Both take prompt strings and return, per prompt, n ``Sample``s. vLLM is imported only when its
backend is built. The HF backend also measures the policy's entropy on its own responses: per
generated token, the entropy of the model's next-token distribution at temperature 1 (before
temperature / top-p / top-k), the paper's diversity measure. vLLM does not expose full-vocabulary
distributions, so its samples carry no entropy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, NamedTuple, Optional

import torch

from openrlhf_nsr import gpu_imports
from openrlhf_nsr.openrlhf_contract import INSTALL_OPENRLHF

VLLM_INSTALL = f"{INSTALL_OPENRLHF} (on a machine with CUDA)"


def vllm_installed() -> bool:
    """Whether vLLM is installed for this Python (gpu_imports' test: importlib finds it)."""
    return "vllm" not in gpu_imports.missing()


@dataclass(frozen=True)
class SamplingConfig:
    n: int
    temperature: float
    top_p: float = 1.0
    top_k: int = -1  # -1: no top-k
    max_tokens: int = 4096
    seed: int = 0


class Sample(NamedTuple):
    text: str
    finish_reason: str  # "stop" (end of sequence) or "length" (max tokens reached)
    num_tokens: int
    entropy_sum: Optional[float]  # sum over the response's tokens; None if the backend can't tell


class HFBackend:
    """transformers ``generate`` with sampling; ``batch_size`` sequences at a time."""

    name = "hf"

    def __init__(self, model: str, batch_size: int = 16, dtype: str = "float32", device: str = "cpu"):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, dtype)).to(device).eval()
        self.batch_size = batch_size
        self.device = device
        eos = self.model.generation_config.eos_token_id or self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
        self.pad_id = (
            self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else next(iter(self.eos_ids))
        )

    @torch.no_grad()
    def generate(self, prompts: List[str], config: SamplingConfig, seeds: List[int]) -> List[List[Sample]]:
        results = []
        for prompt, seed in zip(prompts, seeds):
            ids = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"].to(self.device)
            samples: List[Sample] = []
            for start in range(0, config.n, self.batch_size):
                count = min(self.batch_size, config.n - start)
                torch.manual_seed(seed + start)  # the same samples again after a resume
                out = self.model.generate(
                    ids.expand(count, -1),
                    attention_mask=torch.ones(count, ids.shape[1], dtype=torch.long, device=self.device),
                    do_sample=config.temperature > 0,
                    temperature=config.temperature if config.temperature > 0 else None,
                    top_p=config.top_p,
                    top_k=config.top_k if config.top_k > 0 else 0,
                    max_new_tokens=config.max_tokens,
                    repetition_penalty=1.0,
                    pad_token_id=self.pad_id,
                    eos_token_id=sorted(self.eos_ids),
                    output_logits=True,
                    return_dict_in_generate=True,
                )
                tokens = out.sequences[:, ids.shape[1] :]
                logits = torch.stack(out.logits, dim=1).float()  # (count, steps, vocab), raw
                log_p = torch.log_softmax(logits, dim=-1)
                entropy = -(log_p.exp() * log_p).sum(-1)  # (count, steps)
                for row in range(count):
                    generated = tokens[row].tolist()
                    stop = next((i for i, t in enumerate(generated) if t in self.eos_ids), None)
                    length = len(generated) if stop is None else stop + 1
                    text = self.tokenizer.decode(
                        generated[: length if stop is None else stop], skip_special_tokens=True
                    )
                    samples.append(
                        Sample(text, "length" if stop is None else "stop", length, entropy[row, :length].sum().item())
                    )
            results.append(samples)
        return results


class VLLMBackend:
    """vLLM offline engine: n samples per prompt in one request.

    Prompts reach vLLM as token ids, tokenized as training tokenizes them (``add_special_tokens=False``:
    the templates already hold every special token; a prompt string would get the tokenizer's BOS in
    front of the template's own, e.g. two ``<|begin_of_text|>`` with Llama-3.1)."""

    name = "vllm"

    def __init__(self, model: str, tensor_parallel_size: int = 1, seed: int = 0, max_model_len: Optional[int] = None,
                 gpu_memory_utilization: float = 0.9, enforce_eager: bool = False):  # fmt: skip
        try:
            from vllm import LLM
        except ImportError as err:
            raise RuntimeError(f"the vllm backend needs vLLM: install it with {VLLM_INSTALL}") from err
        self.llm = LLM(
            model=model,
            tensor_parallel_size=tensor_parallel_size,
            seed=seed,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            enforce_eager=enforce_eager,
        )
        self.tokenizer = self.llm.get_tokenizer()

    def prompt_token_ids(self, prompts: List[str]) -> List[List[int]]:
        return [self.tokenizer(prompt, add_special_tokens=False)["input_ids"] for prompt in prompts]

    def generate(self, prompts: List[str], config: SamplingConfig, seeds: List[int]) -> List[List[Sample]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = [
            SamplingParams(
                n=config.n,
                temperature=config.temperature,
                top_p=config.top_p,
                top_k=config.top_k,
                max_tokens=config.max_tokens,
                seed=seed,
            )  # fmt: skip
            for seed in seeds
        ]
        requests = [TokensPrompt(prompt_token_ids=ids) for ids in self.prompt_token_ids(prompts)]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        return [
            [
                Sample(o.text, "length" if o.finish_reason == "length" else "stop", len(o.token_ids), None)
                for o in out.outputs
            ]
            for out in outputs
        ]
