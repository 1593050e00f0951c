"""Builders for OpenRLHF objects on CPU: a RemoteExperienceMaker without Ray, and rollouts."""

from types import SimpleNamespace

import torch

import openrlhf_nsr

openrlhf_nsr.apply()

from openrlhf.trainer.ppo_utils.experience import Experience  # noqa: E402
from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker  # noqa: E402

BUILTIN_ESTIMATORS = ["gae", "reinforce", "rloo", "reinforce_baseline", "group_norm", "dr_grpo", "flash_reinforce"]


def make_args(estimator, n_samples_per_prompt, lam=None, ignored_samples=None, gamma=1.0, kl_coef=0.0, passk_k=None):
    return SimpleNamespace(
        rollout=SimpleNamespace(n_samples_per_prompt=n_samples_per_prompt, max_new_tokens=16),
        reward=SimpleNamespace(clip_range=(-10.0, 10.0), overlong_buffer_len=None, stop_properly_penalty_coef=None),
        data=SimpleNamespace(max_len=64),
        algo=SimpleNamespace(
            advantage=SimpleNamespace(
                estimator=estimator,
                gamma=gamma,
                lambd=1.0,
                no_std_norm=False,
                w_reinforce_lambda=lam,
                ignored_samples=ignored_samples,
                passk_k=passk_k,
            ),
            kl=SimpleNamespace(init_coef=kl_coef),
        ),
    )


class LetterTokenizer:
    """Test input: token id i decodes to the i-th character of ``ALPHABET`` (what the maker's tokenizer does)."""

    ALPHABET = "\\boxed{}0123456789abcdefghijklmnopqrstuvwxyz"

    def batch_decode(self, sequences, skip_special_tokens=False):
        return ["".join(self.ALPHABET[int(i) % len(self.ALPHABET)] for i in seq) for seq in sequences]


def make_maker(args, kl_coef=0.0):
    """The real RemoteExperienceMaker, built without Ray the way OpenRLHF's own tests do."""
    maker = RemoteExperienceMaker.__new__(RemoteExperienceMaker)
    maker.tokenizer = LetterTokenizer()
    maker.strategy = SimpleNamespace(args=args)
    maker.args = args
    maker.advantage_estimator = args.algo.advantage.estimator
    maker.kl_ctl = SimpleNamespace(value=kl_coef)
    return maker


def make_rollout(rewards, micro_batch_size=3, max_response=6, vocab=11, seed=0, order=None):
    """Experiences as RemoteExperienceMaker.make_experience leaves them.

    ``rewards`` is in rollout order (the n samples of a prompt contiguous). ``order`` permutes the
    samples across micro-batches (experience.index keeps each sample's rollout position), as
    dynamic batching does. Responses have different lengths (right padding in the action mask).
    """
    g = torch.Generator().manual_seed(seed)
    rewards = torch.as_tensor(rewards, dtype=torch.float32)
    total = len(rewards)
    order = list(range(total)) if order is None else list(order)
    prompt_len = 3
    lengths = torch.randint(2, max_response + 1, (total,), generator=g)
    experiences = []
    for start in range(0, total, micro_batch_size):
        idx = order[start : start + micro_batch_size]
        b = len(idx)
        action_mask = torch.zeros(b, max_response, dtype=torch.bool)
        for row, i in enumerate(idx):
            action_mask[row, : lengths[i]] = True
        attention_mask = torch.cat([torch.ones(b, prompt_len, dtype=torch.long), action_mask.long()], dim=1)
        sequences = torch.randint(1, vocab, (b, prompt_len + max_response), generator=g) * attention_mask
        log_probs = -torch.rand(b, max_response, generator=g) * action_mask
        experiences.append(
            Experience(
                sequences=sequences,
                attention_mask=attention_mask,
                action_mask=action_mask,
                action_log_probs=log_probs,
                rollout_log_probs=log_probs.clone(),
                kl=torch.zeros(b, max_response),
                values=torch.zeros(b, max_response),
                rewards=rewards[idx].clone(),
                response_length=lengths[idx].float(),
                total_length=(lengths[idx] + prompt_len).float(),
                truncated=torch.zeros(b, dtype=torch.bool),
                index=list(idx),
                info={"reward": rewards[idx].clone()},
            )
        )
    return experiences
