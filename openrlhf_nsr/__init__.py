"""PSR / NSR / W-REINFORCE (Zhu et al., arXiv 2506.01347) for OpenRLHF 0.11.x.

    import openrlhf_nsr
    openrlhf_nsr.apply()  # install the estimators psr, nsr, w_reinforce into OpenRLHF

or, from the command line, ``python -m openrlhf_nsr.train_ppo_ray <OpenRLHF flags>
--algo.advantage.estimator nsr``.
"""

__version__ = "0.1.0"
_FROM_OBJECTIVES = ("compute_advantages", "objective_names", "register_objective")


def __getattr__(name: str):
    # The objectives (and torch with them) load at first use, not with the package: the math
    # reward's grader workers (python -m openrlhf_nsr.reward_worker) import the package and need
    # neither (torch would add about 130 MB and 1.5 s to each).
    if name in _FROM_OBJECTIVES:
        from openrlhf_nsr import objectives

        return getattr(objectives, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def apply() -> None:
    """Install the objectives into OpenRLHF in this process (idempotent, safe in any process)."""
    from openrlhf_nsr.openrlhf_patch import apply as _apply

    _apply()


__all__ = ["apply", "compute_advantages", "objective_names", "register_objective", "__version__"]
