"""PSR / NSR / W-REINFORCE (Zhu et al., arXiv 2506.01347) for OpenRLHF 0.11.x.

    import openrlhf_nsr
    openrlhf_nsr.apply()  # install the estimators psr, nsr, w_reinforce into OpenRLHF

or, from the command line, ``python -m openrlhf_nsr.train_ppo_ray <OpenRLHF flags>
--algo.advantage.estimator nsr``.
"""

from openrlhf_nsr.objectives import compute_advantages, objective_names, register_objective

__version__ = "0.1.0"


def apply() -> None:
    """Install the objectives into OpenRLHF in this process (idempotent, safe in any process)."""
    from openrlhf_nsr.openrlhf_patch import apply as _apply

    _apply()


__all__ = ["apply", "compute_advantages", "objective_names", "register_objective", "__version__"]
