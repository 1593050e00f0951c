"""A short CPU demonstration of what PSR, NSR and W-REINFORCE updates do to a policy.

    python -m openrlhf_nsr.demo [--steps 50] [--seed 0] [--ignored-samples drop|zero]

A toy policy answers P multiple-choice problems with K candidate answers each. Its logits are
``beta * score[p, a] + theta[p, a]``: ``score`` is a fixed "belief" (the answer the model leans
to, right on some problems, wrong on others), ``beta`` a shared sharpness, ``theta`` free
per-answer logits. Each step samples n answers per problem (a rollout), grades them, maps the
grades to advantages with the registered objectives (objectives.py, the same functions the
OpenRLHF integration uses) and takes one clipped-surrogate step with the token-mean normalised
over the kept samples (drop) or all samples (zero). It reports pass@1 and pass@k (exact, from the
policy's probabilities), the policy's mean entropy and its sharpness beta.

This is an illustration of the mechanics on a toy, not the paper's experiment.
"""

from __future__ import annotations

import argparse
import sys

import torch

from openrlhf_nsr import objectives

RUNS = [("psr", None), ("nsr", None), ("w_reinforce", 0.1), ("w_reinforce", 1.0)]


def clipped_surrogate_loss(log_probs, old_log_probs, advantages, loss_mask, eps=0.2):
    """PPO clipped surrogate, token-mean over ``loss_mask`` (an empty mask gives a zero loss)."""
    ratio = (log_probs - old_log_probs).exp()
    surrogate = -torch.min(ratio * advantages, ratio.clamp(1 - eps, 1 + eps) * advantages)
    return (surrogate * loss_mask).sum() / loss_mask.sum().clamp(min=1)


def pass_at_k(p_correct: torch.Tensor, k: int) -> float:
    """Exact pass@k of a policy that answers correctly with probability p_correct per problem."""
    return (1 - (1 - p_correct) ** k).mean().item()


class ToyPolicy(torch.nn.Module):
    def __init__(self, problems: int, answers: int, generator: torch.Generator):
        super().__init__()
        # The model leans to answer 0 (its belief); answer 0 is correct on about 60% of the problems,
        # elsewhere the right answer is one of the 19 it rarely samples.
        self.register_buffer("score", torch.zeros(problems, answers))
        self.score[:, 0] = 1.0
        self.register_buffer("answer", torch.zeros(problems, dtype=torch.long))
        wrong = torch.rand(problems, generator=generator) < 0.4
        self.answer[wrong] = torch.randint(1, answers, (int(wrong.sum()),), generator=generator)
        self.beta = torch.nn.Parameter(torch.tensor(3.0))
        self.theta = torch.nn.Parameter(0.3 * torch.randn(problems, answers, generator=generator))

    def log_probs(self) -> torch.Tensor:
        return torch.log_softmax(self.beta * self.score + self.theta, dim=-1)

    @torch.no_grad()
    def report(self) -> dict:
        log_p = self.log_probs()
        p_correct = log_p.exp().gather(1, self.answer[:, None]).squeeze(1)
        entropy = -(log_p.exp() * log_p).sum(-1).mean().item()
        return {
            "pass@1": pass_at_k(p_correct, 1),
            "pass@8": pass_at_k(p_correct, 8),
            "pass@64": pass_at_k(p_correct, 64),
            "entropy": entropy,
            "beta": self.beta.item(),
        }


def train(objective, lam, steps, seed, ignored_samples, problems=64, answers=20, n=8, lr=0.05):
    generator = torch.Generator().manual_seed(seed)
    policy = ToyPolicy(problems, answers, generator)
    optimizer = torch.optim.Adam(policy.parameters(), lr=lr)
    grad_frac = 0.0
    for _ in range(steps):
        with torch.no_grad():
            old_log_probs = policy.log_probs()
            samples = torch.multinomial(old_log_probs.exp(), n, replacement=True, generator=generator)  # (P, n)
            correct = (samples == policy.answer[:, None]).flatten()
        advantages, carries_grad = objectives.compute_advantages(objective, correct, lam)
        loss_mask = objectives.loss_sample_mask(carries_grad, ignored_samples).float()
        rows = torch.arange(problems).repeat_interleave(n)
        log_probs = policy.log_probs()[rows, samples.flatten()]
        loss = clipped_surrogate_loss(log_probs, old_log_probs[rows, samples.flatten()], advantages, loss_mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        grad_frac += carries_grad.float().mean().item() / steps
    return {**policy.report(), "grad_samples": grad_frac}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50, help="updates per objective (default 50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ignored-samples", choices=objectives.IGNORED_SAMPLES_MODES, default="drop")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")

    base = ToyPolicy(64, 20, torch.Generator().manual_seed(args.seed)).report()
    rows = [("base model", {**base, "grad_samples": float("nan")})]
    for objective, lam in RUNS:
        label = objective if lam is None else f"{objective} (lambda={lam:g})"
        rows.append((label, train(objective, lam, args.steps, args.seed, args.ignored_samples)))

    print(f"Toy policy, 64 problems x 20 answers, 8 samples per problem, {args.steps} steps, "
          f"ignored samples: {args.ignored_samples}\n")  # fmt: skip
    header = f"{'run':<26}{'pass@1':>8}{'pass@8':>8}{'pass@64':>9}{'entropy':>9}{'beta':>7}{'grad samples':>14}"
    print(header)
    print("-" * len(header))
    for label, r in rows:
        print(
            f"{label:<26}{r['pass@1']:>8.3f}{r['pass@8']:>8.3f}{r['pass@64']:>9.3f}{r['entropy']:>9.3f}"
            f"{r['beta']:>7.2f}{r['grad_samples']:>14.2f}"
        )
    print(
        "\npass@k: exact, from the policy's probabilities; entropy: mean over problems (nats); beta: shared "
        "sharpness;\ngrad samples: mean fraction of samples that carried gradient per step. A toy: it shows the "
        "mechanics of\nthe updates, not the paper's result (that is the miniature experiment's and the GPU "
        "recipes' job)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
