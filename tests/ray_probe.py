"""Probes of Ray worker processes, used by test_ray_workers.py.

As a script (the entrypoint of a ``ray job submit`` in the tests) it runs the wrapper CLI for
real: parse, validate, ``ray.init`` with the job's runtime env; OpenRLHF's next step
(``get_strategy``) is replaced by the probes, which print their result and stop the job.
"""

import json
import sys

import ray

TRAINING_MODULES = ("openrlhf.trainer", "openrlhf.models", "deepspeed")


@ray.remote(num_cpus=0)
class TrainerProbe:
    """Stands in for the PPOTrainer / async TrainingActor process: it imports the training code."""

    def probe(self):
        from types import SimpleNamespace

        import torch
        from openrlhf.trainer.ppo_trainer import PPOTrainer
        from openrlhf.trainer.ppo_trainer_async import TrainingActor
        from openrlhf.trainer.ppo_utils.experience import Experience
        from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker

        args = SimpleNamespace(
            rollout=SimpleNamespace(n_samples_per_prompt=2),
            reward=SimpleNamespace(clip_range=None),
            algo=SimpleNamespace(
                advantage=SimpleNamespace(estimator="nsr", gamma=1.0, w_reinforce_lambda=None, ignored_samples="zero")
            ),
        )
        from experience_builders import LetterTokenizer

        maker = RemoteExperienceMaker.__new__(RemoteExperienceMaker)
        maker.strategy, maker.kl_ctl = SimpleNamespace(args=args), SimpleNamespace(value=0.0)
        maker.tokenizer = LetterTokenizer()
        experience = Experience(
            index=[0, 1],
            sequences=torch.ones(2, 4, dtype=torch.long),
            rewards=torch.tensor([1.0, 0.0]),
            action_mask=torch.ones(2, 3, dtype=torch.bool),
            action_log_probs=-torch.ones(2, 3),
            kl=torch.zeros(2, 3),
            info={},
        )
        (experience,) = maker.compute_advantages_and_returns([experience])
        patched = lambda actor: hasattr(actor.__ray_metadata__.modified_class._compute_rollout_stats, "__wrapped__")  # noqa: E731
        return {
            "advantages": experience.advantages.tolist(),
            # Ray copied PPOTrainer's methods when `@ray.remote` ran, before the patch: the copies are patched too
            "sync_rollout_stats_patched": patched(PPOTrainer),
            "async_rollout_stats_patched": patched(TrainingActor),
        }


@ray.remote(num_cpus=0)
class BystanderProbe:
    """Stands in for a vLLM worker: it never imports the training code."""

    def probe(self):
        return {
            "setup_hook_ran": any(type(f).__name__ == "_PostImportPatcher" for f in sys.meta_path),
            "training_modules_loaded": sorted(m for m in sys.modules if m.startswith(TRAINING_MODULES)),
        }


def run_probes():
    trainer, bystander = TrainerProbe.remote(), BystanderProbe.remote()
    return {"trainer": ray.get(trainer.probe.remote()), "bystander": ray.get(bystander.probe.remote())}


def main(argv):
    import openrlhf.utils

    from openrlhf_nsr import train_ppo_ray

    def probe_instead_of_training(args):  # OpenRLHF calls get_strategy right after ray.init
        print("PROBE " + json.dumps(run_probes()), flush=True)
        raise SystemExit(0)

    openrlhf.utils.get_strategy = probe_instead_of_training
    return train_ppo_ray.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
