import re

from setuptools import find_packages, setup

# The OpenRLHF version the adapter is tested with: its one definition, in openrlhf_contract.py.
TESTED_OPENRLHF = re.search(
    r'^TESTED_OPENRLHF = "([^"]+)"', open("openrlhf_nsr/openrlhf_contract.py", encoding="utf-8").read(), re.M
).group(1)

setup(
    name="openrlhf-nsr",
    version="0.1.0",
    description=(
        "PSR / NSR / W-REINFORCE (Zhu et al., 'The Surprising Effectiveness of Negative Reinforcement in "
        "LLM Reasoning', arXiv 2506.01347) for OpenRLHF 0.11.x"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["openrlhf_nsr", "openrlhf_nsr.*"]),
    # The paper's reference pass@k (eval compare --paper) ships inside the package.
    package_data={"openrlhf_nsr": ["paper_passk.csv"]},
    python_requires=">=3.10",
    # OpenRLHF is not a hard requirement: its wheel hard-pins the CUDA-only flash-attn.
    # math-verify: grading semantics depend on its version (tests/test_reward.py lists 0.9's residue).
    # pandas / datasets / transformers / matplotlib / tqdm: the evaluation harness (openrlhf_nsr.eval).
    install_requires=[
        "torch>=2.1",
        "math-verify>=0.9.0,<0.10",
        "pandas",
        "pyarrow",
        "datasets",
        "transformers",
        "matplotlib",
        "tqdm",
    ],
    extras_require={
        # GPU cluster: OpenRLHF with vLLM (see README.md "Train on a GPU cluster").
        "openrlhf": [f"openrlhf[vllm]=={TESTED_OPENRLHF}"],
        "test": ["pytest>=8", "ruff==0.14.*"],
    },
)
