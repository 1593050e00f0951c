"""Drop-in for ``python -m openrlhf.cli.train_ppo_ray`` that adds the paper's estimators.

    python -m openrlhf_nsr.train_ppo_ray <any OpenRLHF 0.11.2 train_ppo_ray flags> \\
        --algo.advantage.estimator nsr            # or psr | w_reinforce
        [--algo.advantage.w_reinforce_lambda 0.1] # w_reinforce only (default 0.1)
        [--algo.advantage.ignored_samples drop]   # psr / nsr only: drop (default) | zero
        [--dry_run]                               # parse + validate, print the config, exit 0
        [--reward.remote_url math_verify]         # the package's math reward (openrlhf_nsr/reward.py)

Also works as the entrypoint of ``ray job submit ... -- python -m openrlhf_nsr.train_ppo_ray ...``.
``--help`` and ``--dry_run`` work on a machine without vLLM / flash-attn (gpu_imports.py); a real
run there stops at once, naming what to install.

OpenRLHF builds its parser inside ``if __name__ == "__main__":`` of its CLI module, so this
wrapper runs that module as ``__main__`` (runpy) with three hooks in place for the run:
``ArgumentParser.parse_args`` (extend the parser, then validate), ``openrlhf.utils.config.
hierarchize`` (capture the final config) and ``ray.init`` (add the worker setup hook that patches
every Ray worker, see openrlhf_patch.py). Everything else is OpenRLHF's own code.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import runpy
import sys
from types import SimpleNamespace
from typing import List, Optional

from openrlhf_nsr import objectives, openrlhf_contract

OPENRLHF_CLI = "openrlhf.cli.train_ppo_ray"
ESTIMATOR = "algo.advantage.estimator"
LAMBDA = "algo.advantage.w_reinforce_lambda"
IGNORED = "algo.advantage.ignored_samples"
KL_COEF = "algo.kl.init_coef"
REMOTE_URL = "reward.remote_url"
# --reward.remote_url names resolved to the reward files this package installs.
BUILTIN_REWARDS = {"math_verify": "openrlhf_nsr.reward"}
LOG_PREFIX = "[openrlhf_nsr]"


class _DryRunDone(Exception):
    pass


def extend_parser(parser: argparse.ArgumentParser) -> float:
    """Add our estimators and flags to OpenRLHF's parser; return the KL coefficient's default."""
    actions = {action.dest: action for action in parser._actions}
    openrlhf_contract.check_parser(actions)
    estimator = actions[ESTIMATOR]
    estimator.choices = list(estimator.choices) + [
        n for n in objectives.objective_names() if n not in estimator.choices
    ]
    estimator.help += (
        "; openrlhf_nsr adds psr (correct samples only, +1), nsr (incorrect only, -1) and w_reinforce "
        "(+lambda / -1), Zhu et al. 2025 (arXiv 2506.01347)"
    )
    parser.add_argument(
        f"--{LAMBDA}",
        type=float,
        default=None,
        help=f"w_reinforce: advantage of correct samples, >= 0 (default {objectives.DEFAULT_LAMBDA}, the paper's; "
        "1 = plain REINFORCE)",
    )
    parser.add_argument(
        f"--{IGNORED}",
        choices=objectives.IGNORED_SAMPLES_MODES,
        default=None,
        help="psr / nsr: samples that carry no gradient are removed from the update, the token-mean counting "
        "kept tokens only (drop, default, the paper's reference code) or kept with advantage 0, diluting it (zero)",
    )
    parser.add_argument(
        "--dry_run",
        action="store_true",
        default=False,
        help="parse and validate the command (OpenRLHF's and openrlhf_nsr's checks), print the resolved "
        "configuration as JSON and exit 0 before Ray starts",
    )
    kl_coef = actions[KL_COEF]
    kl_default = kl_coef.default
    kl_coef.default = None  # None = "not given"; resolved in finalize_args
    return kl_default


def resolve_reward_urls(urls: Optional[str]) -> Optional[str]:
    """``math_verify`` -> the path of the installed reward file; anything else is left as is."""
    if not urls:
        return urls
    import importlib.util

    def resolve(url):
        module = BUILTIN_REWARDS.get(url.strip())
        return importlib.util.find_spec(module).origin if module else url

    return ",".join(resolve(url) for url in urls.split(","))


def finalize_args(parser: argparse.ArgumentParser, args: argparse.Namespace, kl_default: float) -> None:
    """Validate our flags against the estimator and fill their defaults (flat, dotted namespace)."""
    setattr(args, REMOTE_URL, resolve_reward_urls(getattr(args, REMOTE_URL)))
    name = getattr(args, ESTIMATOR)
    if name not in objectives.objective_names():
        for flag, users in (
            (LAMBDA, objectives.lambda_objectives()),
            (IGNORED, objectives.sample_ignoring_objectives()),
        ):
            if getattr(args, flag) is not None:
                parser.error(
                    f"--{flag} only applies to --{ESTIMATOR} {' / '.join(users)}, not {name}: remove it or change "
                    "the estimator"
                )
        if getattr(args, KL_COEF) is None:
            setattr(args, KL_COEF, kl_default)
        return

    objective = objectives.get_objective(name)
    if objective.uses_lambda:
        lam = getattr(args, LAMBDA)
        try:
            setattr(args, LAMBDA, objectives.check_lambda(objectives.DEFAULT_LAMBDA if lam is None else lam))
        except ValueError as err:
            parser.error(f"--{LAMBDA}: {err}")
    elif getattr(args, LAMBDA) is not None:
        parser.error(
            f"--{LAMBDA} only applies to --{ESTIMATOR} {' / '.join(objectives.lambda_objectives())}, not {name}: "
            "remove it or change the estimator"
        )
    if objective.ignores_samples:
        if getattr(args, IGNORED) is None:
            setattr(args, IGNORED, objectives.DEFAULT_IGNORED_SAMPLES)
    elif getattr(args, IGNORED) is not None:
        parser.error(
            f"--{IGNORED} only applies to --{ESTIMATOR} {' / '.join(objectives.sample_ignoring_objectives())}: "
            f"{name} trains on every sample, so there is nothing to drop; remove the flag"
        )
    if getattr(args, "algo.dynamic_filtering_enable"):
        parser.error(
            f"--algo.dynamic_filtering_enable removes the prompts whose samples are all wrong (what nsr learns "
            f"from) and all right (what psr learns from), which defeats --{ESTIMATOR} {name}: remove the flag"
        )
    if getattr(args, "algo.advantage.gamma") != 1.0:
        parser.error(f"{name} uses one constant advantage per response: remove --algo.advantage.gamma (or set it to 1)")
    if (
        getattr(args, "reward.overlong_buffer_len") is not None
        or getattr(args, "reward.stop_properly_penalty_coef") is not None
    ):
        parser.error(
            f"{name} maps the verifier's 0/1 score to fixed advantages; the length penalties "
            "(--reward.overlong_buffer_len, --reward.stop_properly_penalty_coef) would change which samples count "
            "as correct: remove them (a truncated response already scores 0, i.e. counts as incorrect)"
        )
    if getattr(args, KL_COEF) is None:
        setattr(args, KL_COEF, 0.0)
        print(
            f"{LOG_PREFIX} --{ESTIMATOR} {name}: --{KL_COEF} not given, using 0 (no KL penalty, no reference "
            f"model), as in the paper; pass --{KL_COEF} explicitly to use one"
        )


@contextlib.contextmanager
def _patched(owner, name, make_replacement):
    original = getattr(owner, name)
    setattr(owner, name, make_replacement(original))
    try:
        yield
    finally:
        setattr(owner, name, original)


def _to_dict(namespace):
    return {k: _to_dict(v) if isinstance(v, SimpleNamespace) else v for k, v in vars(namespace).items()}


def main(argv: Optional[List[str]] = None) -> int:
    from openrlhf_nsr import gpu_imports, openrlhf_patch

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        openrlhf_patch.apply()  # version check; also patches this process (harmless for the driver)
    except RuntimeError as err:
        print(f"{LOG_PREFIX} error: {err}", file=sys.stderr)
        return 2
    absent = gpu_imports.missing()
    validating_only = bool({"-h", "--help", "--dry_run"} & set(argv))
    if absent and not validating_only:
        print(
            f"{LOG_PREFIX} error: a training run needs {' and '.join(absent)}, not installed here: "
            f"{gpu_imports.INSTALL}. --help and --dry_run work without them.",
            file=sys.stderr,
        )
        return 2
    # OpenRLHF's CLI imports vLLM / flash-attn at module level; parsing a command needs neither
    try:
        with gpu_imports.placeholders(absent) if absent else contextlib.nullcontext():
            return _run(argv)
    except openrlhf_contract.ContractError as err:  # an OpenRLHF that moved a name the adapter uses
        print(f"{LOG_PREFIX} error: {err}", file=sys.stderr)
        return 2


def _run(argv: List[str]) -> int:
    import openrlhf.utils.config as openrlhf_config
    import ray

    from openrlhf_nsr import openrlhf_patch

    openrlhf_contract.check(openrlhf_config)

    state = SimpleNamespace(config=None, dry_run=False)

    def parse_args_hook(original):
        def parse_args(self, args=None, namespace=None):
            if not any(action.dest == ESTIMATOR for action in self._actions):
                return original(self, args, namespace)
            kl_default = extend_parser(self)
            parsed = original(self, args, namespace)
            finalize_args(self, parsed, kl_default)
            state.dry_run = parsed.dry_run
            return parsed

        return parse_args

    def hierarchize_hook(original):
        def hierarchize(args):
            state.config = original(args)
            return state.config

        return hierarchize

    def ray_init_hook(original):
        def init(*args, **kwargs):
            if state.dry_run:  # OpenRLHF has finished validating: stop before anything starts
                raise _DryRunDone
            kwargs["runtime_env"] = openrlhf_patch.with_setup_hook(kwargs.get("runtime_env"))
            return original(*args, **kwargs)

        return init

    saved_argv = sys.argv
    sys.argv = [OPENRLHF_CLI] + argv
    try:
        with (
            _patched(argparse.ArgumentParser, "parse_args", parse_args_hook),
            _patched(openrlhf_config, "hierarchize", hierarchize_hook),
            _patched(ray, "init", ray_init_hook),
        ):
            runpy.run_module(OPENRLHF_CLI, run_name="__main__", alter_sys=True)
    except _DryRunDone:
        print(f"{LOG_PREFIX} dry run: the command is valid; resolved configuration:")
        print(json.dumps(_to_dict(state.config), indent=2, sort_keys=True, default=str))
    finally:
        sys.argv = saved_argv
    return 0


if __name__ == "__main__":
    sys.exit(main())
