"""The eval's vLLM backend on the real vLLM 0.29.0 (its CPU build): what the engine receives.

A tokenizer that adds a BOS token of its own (as Llama-3.1's does) must not put a second one in
front of a template that already starts with it: the backend hands vLLM token ids tokenized as
training tokenizes them (``add_special_tokens=False``), never the prompt string.
"""

import json
import os
import subprocess
import sys

import pytest
from conftest import GPU_STUBS, HERE, PAPER_DATA

sys.path.insert(0, str(HERE / "e2e"))
import tiny_task  # noqa: E402

BOS = "<|im_start|>"


def test_without_vllm_the_vllm_backend_is_a_usage_error_with_the_install_line(tmp_path):
    """A machine without vLLM (tests/without_gpu_packages hides the CPU build): exit 2 before any data or
    model is loaded, one error line naming vLLM and the line that installs it, no traceback, nothing written."""
    from openrlhf_nsr.openrlhf_contract import INSTALL_OPENRLHF

    env = dict(os.environ)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(GPU_STUBS)]
    env["PYTHONPATH"] = os.pathsep.join([str(HERE / "without_gpu_packages")] + paths)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "openrlhf_nsr.eval", "--backend", "vllm", "--model", "Qwen/Qwen2.5-Math-7B",
               "--datasets", f"math={PAPER_DATA / 'math_test.parquet'}", "--out", str(out)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and not out.exists()
    errors = [line for line in result.stderr.splitlines() if line.startswith("python -m openrlhf_nsr.eval: error:")]
    assert errors == [
        f"python -m openrlhf_nsr.eval: error: argument --backend: vllm, but vLLM is not installed for "
        f"{sys.executable}: install it with {INSTALL_OPENRLHF} (on a machine with CUDA), or use --backend hf "
        "(transformers, CPU-sized models)"
    ]


@pytest.fixture(scope="module")
def model_adding_bos(tmp_path_factory):
    """A random tiny Qwen3 (heads of 64: vLLM's CPU attention) whose tokenizer puts BOS before every text."""
    import torch
    from tokenizers.processors import TemplateProcessing
    from transformers import Qwen3Config, Qwen3ForCausalLM

    folder = tmp_path_factory.mktemp("bos-model")
    tokenizer = tiny_task._tokenizer()
    bos_id = tokenizer.convert_tokens_to_ids(BOS)
    tokenizer._tokenizer.post_processor = TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, bos_id)])
    tokenizer.bos_token = BOS
    torch.manual_seed(0)
    config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                         head_dim=64, num_attention_heads=1, num_key_value_heads=1, max_position_embeddings=256,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=bos_id, tie_word_embeddings=True)  # fmt: skip
    Qwen3ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    # load it as it is (with its post-processor), not rebuilt as Qwen2's tokenizer class
    config_file = folder / "tokenizer_config.json"
    config_file.write_text(
        json.dumps(dict(json.loads(config_file.read_text()), tokenizer_class="PreTrainedTokenizerFast"))
    )
    return folder, bos_id


def test_vllm_receives_the_prompt_tokens_of_training_with_one_bos(model_adding_bos, monkeypatch):
    from transformers import AutoTokenizer

    from openrlhf_nsr.generation import SamplingConfig, VLLMBackend

    folder, bos_id = model_adding_bos
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    prompts = [tiny_task.prompt_text("1+2"), tiny_task.prompt_text("3+4")]  # the qwen template starts with BOS
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert all(tokenizer(p)["input_ids"][:2] == [bos_id, bos_id] for p in prompts)  # the trap: two BOS

    backend = VLLMBackend(str(folder), seed=0, max_model_len=256, enforce_eager=True)
    received = []
    generate = backend.llm.generate

    def spy(requests, params, **kwargs):
        outputs = generate(requests, params, **kwargs)
        received.extend(
            (request["prompt_token_ids"], output.prompt_token_ids) for request, output in zip(requests, outputs)
        )
        return outputs

    backend.llm.generate = spy
    try:
        samples = backend.generate(prompts, SamplingConfig(n=3, temperature=1.0, max_tokens=4), seeds=[0, 1])
    finally:  # stop the engine's process while pytest's output capture is still open
        backend.llm.llm_engine.engine_core.shutdown()

    training = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    assert [sent for sent, _ in received] == training
    assert [list(engine) for _, engine in received] == training  # what the engine itself reports
    assert all(ids[0] == bos_id and ids[1] != bos_id for ids in training)  # the template's own BOS, once
    assert [len(s) for s in samples] == [3, 3] and all(0 < x.num_tokens <= 4 for s in samples for x in s)
