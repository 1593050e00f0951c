"""Drop-in for ``python -m openrlhf.cli.train_ppo_ray`` that adds the paper's estimators.

    python -m openrlhf_nsr.train_ppo_ray <any OpenRLHF 0.11.2 train_ppo_ray flags> \\
        --algo.advantage.estimator nsr            # or psr | w_reinforce | maxrl | passk
        [--algo.advantage.passk_k 4]              # passk only (required): 1 <= k < n_samples_per_prompt
        [--algo.advantage.w_reinforce_lambda 0.1] # w_reinforce only (default 0.1); or 0:0,40:0.1
        [--algo.advantage.lambda_controller entropy --algo.advantage.lambda_controller_target 0.9]
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
import os
import re
import runpy
import sys
from types import SimpleNamespace
from typing import List, Optional

from openrlhf_nsr import drop_mode, objectives, openrlhf_contract, preflight

OPENRLHF_CLI = "openrlhf.cli.train_ppo_ray"
ESTIMATOR = "algo.advantage.estimator"
HYPERPARAMETER_PREFIX = "algo.advantage."  # an objective's hyperparameter X is --algo.advantage.X
KL_COEF = "algo.kl.init_coef"
REMOTE_URL = "reward.remote_url"
LOG_PREFIX = "[openrlhf_nsr]"
RESOLVED_CONFIGURATION = f"{LOG_PREFIX} resolved configuration: "  # then the run's configuration as JSON, one line


class _DryRunDone(Exception):
    pass


def extend_parser(parser: argparse.ArgumentParser) -> float:
    """Add our estimators and every objective's hyperparameters to OpenRLHF's parser.

    Returns the KL coefficient's default.
    """
    actions = {action.dest: action for action in parser._actions}
    openrlhf_contract.check_parser(actions)
    estimator = actions[ESTIMATOR]
    estimator.choices = list(estimator.choices) + [
        n for n in objectives.objective_names() if n not in estimator.choices
    ]
    remote_url = actions[REMOTE_URL]
    remote_url.help = (remote_url.help or "") + (
        "; openrlhf_nsr: also math_verify (the package's math reward, openrlhf_nsr/reward.py) or the path of a "
        ".py file defining reward_func(queries, prompts, labels)"
    )
    estimator.help += (
        "; openrlhf_nsr adds psr (correct samples only, +1), nsr (incorrect only, -1) and w_reinforce "
        "(+lambda / -1) of Zhu et al. 2025 (arXiv 2506.01347), and the group objectives maxrl and passk"
    )
    _add_own_flags(parser)
    kl_coef = actions[KL_COEF]
    kl_default = kl_coef.default
    kl_coef.default = None  # None = "not given"; resolved in finalize_args
    return kl_default


def _add_own_flags(parser: argparse.ArgumentParser) -> None:
    """The wrapper's flags: every objective's hyperparameters and the plugin's switches."""
    for name, (param, users) in objectives.hyperparameters().items():
        default = "" if param.default is None else f" (default {param.default})"
        parser.add_argument(
            f"--{HYPERPARAMETER_PREFIX}{name}",
            type=str,  # parsed and validated in finalize_args: the message can then name the estimator
            choices=param.choices,
            default=None,  # None = "not given"; defaults are filled in for the chosen estimator only
            metavar="VALUE" if param.choices is None else None,
            help=f"{' / '.join(users)}: {param.help}{default}",
        )
    parser.add_argument(
        "--rollout.drop_last_batch",
        action="store_true",
        default=False,
        help="openrlhf_nsr: train only whole rollout batches, dropping the last prompts of each shuffled pass as "
        "the paper's reference does (verl's drop_last=True); OpenRLHF's default trains the partial last batch",
    )
    parser.add_argument(
        "--eval.before_training",
        action="store_true",
        default=False,
        help="openrlhf_nsr: evaluate the starting model at step 0, as the paper's reference does (not on resume; "
        "synchronous trainer)",
    )
    parser.add_argument(
        "--data.skip_label_check",
        action="store_true",
        default=False,
        help="openrlhf_nsr: start even if the labels of the prompt / eval datasets fail the start-up check "
        "(missing key, empty, or golds the math reward cannot grade)",
    )
    parser.add_argument(
        "--gpu_memory_gb",
        type=float,
        default=None,
        metavar="GB",
        help="openrlhf_nsr: memory of one GPU; refuse a run whose estimated peak per GPU (recipes/README.md, "
        "'Memory per GPU') exceeds it. Not given or 0: estimate only",
    )
    parser.add_argument(
        "--dry_run",
        action="store_true",
        default=False,
        help="parse and validate the command (OpenRLHF's and openrlhf_nsr's checks), print the resolved "
        "configuration as JSON and exit 0 before Ray starts",
    )


def resolve_reward_urls(urls: Optional[str]) -> Optional[str]:
    """``math_verify`` -> the path of the installed reward file; anything else is left as is."""
    if not urls:
        return urls
    import importlib.util

    def resolve(url):
        module = preflight.BUILTIN_REWARDS.get(url.strip())
        return importlib.util.find_spec(module).origin if module else url

    return ",".join(resolve(url) for url in urls.split(","))


class UsageError(Exception):
    """A command the wrapper refuses: one line saying what was wrong and how to fix it (exit 2, no usage dump)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def early_check(argv: List[str]) -> None:
    """The wrapper's own checks on the command as typed, before OpenRLHF (torch, DeepSpeed, Ray, vLLM) is
    imported: a mistake in our flags is reported in about two seconds instead of ten. OpenRLHF's flags the
    checks read are taken with OpenRLHF's defaults (openrlhf_contract.PARSER_FLAGS, checked against its parser
    when the real parse runs); the same checks run again there, on OpenRLHF's parsed arguments."""
    parser = _Parser(add_help=False, allow_abbrev=False)
    kinds = {"str": str, "int": int, "float": float}
    for dest, (default, kind) in openrlhf_contract.PARSER_FLAGS.items():
        if kind == "flag":
            parser.add_argument(f"--{dest}", action="store_true", default=default)
        else:
            parser.add_argument(f"--{dest}", type=kinds[kind], default=default)
    _add_own_flags(parser)
    options = {option for action in parser._actions for option in action.option_strings}
    flags = {word.split("=", 1)[0] for word in argv if word.startswith("--")}
    if any(flag not in options and any(o.startswith(flag) for o in options) for flag in flags):
        return  # an abbreviated flag, which OpenRLHF's parser accepts: only the check on its parse can read it
    args, _ = parser.parse_known_args(argv)
    validate(args)


def validate(args: argparse.Namespace) -> dict:
    """The wrapper's checks on a flat, dotted namespace; the chosen objective's validated hyperparameters.
    Raises UsageError (or preflight.Refusal) with a one-line message naming the flag and the fix."""
    preflight.check_sources(
        getattr(args, "actor.model_name_or_path"),
        [
            ("--data.prompt_dataset", getattr(args, "data.prompt_dataset")),
            ("--eval.dataset", getattr(args, "eval.dataset")),
        ],
        getattr(args, REMOTE_URL),
    )
    if getattr(args, "eval.before_training") and getattr(args, "train.async_enable"):
        raise UsageError("--eval.before_training applies to the synchronous trainer: remove it or --train.async_enable")
    name = getattr(args, ESTIMATOR)
    declared = objectives.hyperparameters()
    given = {key: getattr(args, HYPERPARAMETER_PREFIX + key) for key in declared}
    own = {param.name for param in objectives.get_objective(name).hyperparameters} if _is_ours(name) else set()
    for key, value in given.items():
        if value is not None and key not in own:
            raise UsageError(
                f"--{HYPERPARAMETER_PREFIX}{key} only applies to --{ESTIMATOR} {' / '.join(declared[key][1])}, "
                f"not {name}: remove it or change the estimator"
            )
    if not _is_ours(name):
        return {}
    for key in own:  # one flag at a time first, so the message names the flag that is wrong
        try:
            objectives.parse_hyperparameter(declared[key][0], given[key])
        except ValueError as err:
            raise UsageError(f"--{HYPERPARAMETER_PREFIX}{key} {given[key]}: {err}") from None
    try:
        values = objectives.resolve_hyperparameters(
            name, {k: v for k, v in given.items() if k in own}, getattr(args, "rollout.n_samples_per_prompt")
        )
    except ValueError as err:
        raise UsageError(f"--{ESTIMATOR} {name}: {_as_flags(str(err))}") from None
    if getattr(args, "algo.dynamic_filtering_enable") and objectives.get_objective(name).groups:
        raise UsageError(
            f"--algo.dynamic_filtering_enable removes the prompts whose samples are all right or all wrong; "
            f"--{ESTIMATOR} {name} gives them advantage 0 and, as its reference code, keeps them in the token-mean: "
            "remove the flag"
        )
    if getattr(args, "algo.dynamic_filtering_enable"):
        raise UsageError(
            f"--algo.dynamic_filtering_enable removes the prompts whose samples are all wrong (what nsr learns "
            f"from) and all right (what psr learns from), which defeats --{ESTIMATOR} {name}: remove the flag"
        )
    if getattr(args, "algo.advantage.gamma") != 1.0:
        raise UsageError(
            f"{name} uses one constant advantage per response: remove --algo.advantage.gamma (or set it to 1)"
        )
    if (
        getattr(args, "reward.overlong_buffer_len") is not None
        or getattr(args, "reward.stop_properly_penalty_coef") is not None
    ):
        raise UsageError(
            f"{name} maps the verifier's 0/1 score to fixed advantages; the length penalties "
            "(--reward.overlong_buffer_len, --reward.stop_properly_penalty_coef) would change which samples count "
            "as correct: remove them (a truncated response already scores 0, i.e. counts as incorrect)"
        )
    return values


def _is_ours(name: str) -> bool:
    return name in objectives.objective_names()


def finalize_args(args: argparse.Namespace, kl_default: float) -> None:
    """Validate our flags against the estimator and fill their defaults (flat, dotted namespace)."""
    values = validate(args)
    setattr(args, REMOTE_URL, resolve_reward_urls(getattr(args, REMOTE_URL)))
    for key, value in values.items():
        setattr(args, HYPERPARAMETER_PREFIX + key, value)
    name = getattr(args, ESTIMATOR)
    if not _is_ours(name):
        if getattr(args, KL_COEF) is None:
            setattr(args, KL_COEF, kl_default)
        return
    if drop_mode.ignored_samples_mode(name, values.get("ignored_samples")) == "drop":
        masking = drop_mode.masking_reason(getattr(args, "ds.ring_attn_size"), getattr(args, "ds.tensor_parallel_size"))
        if masking:
            print(f"{LOG_PREFIX} --{ESTIMATOR} {name}: {masking}")
    if getattr(args, KL_COEF) is None:
        setattr(args, KL_COEF, 0.0)
        print(
            f"{LOG_PREFIX} --{ESTIMATOR} {name}: --{KL_COEF} not given, using 0 (no KL penalty, no reference "
            f"model), as in the paper; pass --{KL_COEF} explicitly to use one"
        )


def _as_flags(message: str) -> str:
    """Name hyperparameters in ``message`` as the flags the user typed."""
    for key in sorted(objectives.hyperparameters(), key=len, reverse=True):
        message = re.sub(rf"(?<![\w.-]){key}\b", f"--{HYPERPARAMETER_PREFIX}{key}", message)
    return message


def _describe(args: argparse.Namespace) -> List[str]:
    """One line per step-dependent hyperparameter of the chosen objective, for --dry_run."""
    name = getattr(args, ESTIMATOR)
    if name not in objectives.objective_names():
        return []
    given = {
        p.name: getattr(args, HYPERPARAMETER_PREFIX + p.name) for p in objectives.get_objective(name).hyperparameters
    }
    run = objectives.objective_run(name, given, getattr(args, "rollout.n_samples_per_prompt"))
    return [_as_flags(line) for line in run.describe()]


def rollout_actors_per_node(config) -> int:
    """The vLLM rollout actors (each with its own grader pool) one node holds: engines over nodes."""
    nodes = max(1, getattr(config.actor, "num_nodes", 1) or 1)
    return max(1, -(-(getattr(config.vllm, "num_engines", None) or 1) // nodes))


def with_reward_environment(runtime_env: dict, config) -> dict:
    """``runtime_env`` with the number of rollout actors per node in its env_vars, so that each actor's
    grader pool takes its share of the node's cores (reward_pool.default_workers); a value the user set wins."""
    from openrlhf_nsr import reward_pool

    runtime_env = dict(runtime_env)
    env_vars = dict(runtime_env.get("env_vars") or {})
    if reward_pool.ACTORS_PER_NODE_ENV not in env_vars and reward_pool.ACTORS_PER_NODE_ENV not in os.environ:
        env_vars[reward_pool.ACTORS_PER_NODE_ENV] = str(rollout_actors_per_node(config))
    runtime_env["env_vars"] = env_vars
    return runtime_env


def _preflight(config) -> List[str]:
    """The run's length, memory and disk (preflight.plan) and its labels' check; Refusal stops the run."""
    gpu_memory_gb = getattr(config, "gpu_memory_gb", None) or None
    lines = preflight.plan(config, gpu_memory_gb)
    if getattr(config.data, "skip_label_check", False):
        lines.append("labels: not checked (--data.skip_label_check)")
    else:
        lines += preflight.check_dataset_labels(config)
    return lines


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
        if not {"-h", "--help"} & set(argv):
            early_check(argv)
        openrlhf_patch.apply()  # version check; also patches this process (harmless for the driver)
    except (UsageError, preflight.Refusal, RuntimeError) as err:
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
    except (UsageError, preflight.Refusal, openrlhf_contract.ContractError) as err:
        # a bad command (found again on OpenRLHF's parsed arguments) or an OpenRLHF that moved a name we use
        print(f"{LOG_PREFIX} error: {err}", file=sys.stderr)
        return 2


def _run(argv: List[str]) -> int:
    import openrlhf.utils.config as openrlhf_config
    import ray

    from openrlhf_nsr import openrlhf_patch

    openrlhf_contract.check(openrlhf_config)

    state = SimpleNamespace(config=None, dry_run=False, args=None)

    def parse_args_hook(original):
        def parse_args(self, args=None, namespace=None):
            if not any(action.dest == ESTIMATOR for action in self._actions):
                return original(self, args, namespace)
            kl_default = extend_parser(self)
            parsed = original(self, args, namespace)
            finalize_args(parsed, kl_default)
            state.dry_run, state.args = parsed.dry_run, parsed
            return parsed

        return parse_args

    def hierarchize_hook(original):
        def hierarchize(args):
            state.config = original(args)
            return state.config

        return hierarchize

    def ray_init_hook(original):
        def init(*args, **kwargs):
            # OpenRLHF has finished validating: our estimates and checks, then (dry run) stop before anything starts
            for line in _preflight(state.config):
                print(f"{LOG_PREFIX} {line}", flush=True)
            if state.dry_run:
                raise _DryRunDone
            # the configuration the run trains with, in its log (one line of JSON, as --dry_run prints it)
            print(f"{RESOLVED_CONFIGURATION}{json.dumps(_to_dict(state.config), default=str)}", flush=True)
            kwargs["runtime_env"] = with_reward_environment(
                openrlhf_patch.with_setup_hook(kwargs.get("runtime_env")), state.config
            )
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
        for line in _describe(state.args):
            print(f"{LOG_PREFIX} {line}")
        print(f"{LOG_PREFIX} dry run: the command is valid; resolved configuration:")
        print(json.dumps(_to_dict(state.config), indent=2, sort_keys=True, default=str))
    finally:
        sys.argv = saved_argv
    return 0


if __name__ == "__main__":
    sys.exit(main())
