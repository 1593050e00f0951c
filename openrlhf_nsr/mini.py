"""The paper's experiment in miniature, on CPU: five seeds, paired intervals, about 6 minutes on 2 cores.

    python -m openrlhf_nsr.mini                       # seeds 0-4: the paired report, in runs/mini
    python -m openrlhf_nsr.mini --smoke --out DIR     # the whole pipeline in about 15 seconds (judges nothing)
    python -m openrlhf_nsr.mini --seeds 0-9 --jobs 8  # more seeds, more processes: the same numbers per seed
    python -m openrlhf_nsr.mini --lr 1e-4 --runs nsr,w_reinforce,w_reinforce_sched,w_reinforce_adaptive

The policy is a small character-level transformer (GPT-2 architecture, trained here on the spot:
no download) that learns to add numbers and write the sum as ``\\boxed{...}``. Each seed pretrains
its own base until its pass@1 on held-out dev problems reaches ``--pretrain-target`` (default 0.2),
so the bases have real but imperfect ability (pass@1 well below pass@64, as the paper's base
models) and differ little between seeds. Then, from the seed's base, one RL run per objective:

- ``psr``, ``nsr``, ``w_reinforce`` (lambda 0.1), ``reinforce`` (lambda 1, opt-in): advantages
  from the registered objective functions (objectives.py, the ones the OpenRLHF path uses);
- ``grpo``: the group-normalised baseline, (r - mean) / (std + 1e-6) over each prompt's samples;
- ``w_reinforce_sched``, ``w_reinforce_adaptive`` (opt-in: select them with ``--runs``):
  W-REINFORCE whose lambda moves over training, the paper's advice "punish first, reward later"
  and "watch diversity" (docs/paper.md §5) made concrete with schedules.py: a ``Schedule`` over the RL steps
  (``--lam-schedule``; by default lambda 0 for the first third of the steps, brought up linearly to
  ``--lam`` over the second third, ``--lam`` after), or the ``EntropyLambdaController``
  (``--lam-target``, upper bound ``--lam``), fed each step the entropy this module records for the
  step's rollouts (the exact mean per-token entropy of the sampling distribution; the OpenRLHF path
  feeds its unbiased estimate, the mean -log p of the sampled tokens). Steps count as OpenRLHF's
  global steps: the first rollout batch is step 1.

Each step samples n answers per prompt at temperature 1, grades them with the project's reward
(reward.grade_batch, math-verify on the boxed answer), and takes PPO clipped-surrogate steps
(clip 0.2, two mini-batches per rollout batch, one epoch) with the token-mean over the kept
samples (``--ignored-samples drop``) or all samples (``zero``): the loss of OpenRLHF's
``PolicyLoss`` (log-ratio clamp included; tested for parity), as the OpenRLHF integration uses.

Every pretraining and every RL run is a task in a worker process with one torch thread, so a
seed's numbers are the same on any machine, at any ``--jobs``, under any load (tested). The
report (``report.md``, ``results.json``, ``passk.png``, ``paired.png``, ``training.png``) gives
pass@k for k = 1..64 on held-out problems (metrics.pass_at_k), the entropy, and the paired
differences (each run minus its base, NSR - PSR, W-REINFORCE - GRPO, NSR - GRPO) with 95%
intervals over the seeds (paired.py); each of the paper's claims is judged on its interval.

This is a sandbox for the objectives, not a replacement for OpenRLHF: plain PyTorch.
"""

from __future__ import annotations

import argparse
import atexit
import io
import json
import math
import multiprocessing
import os
import random
import statistics
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch

from openrlhf_nsr import objectives, paired, plotting
from openrlhf_nsr.metrics import default_ks, mean_pass_at_k
from openrlhf_nsr.schedules import Schedule

VOCAB = list("0123456789+=Q:\\boxed{}") + ["<eos>"]  # characters are unique: one token each
STOI = {c: i for i, c in enumerate(VOCAB)}
EOS = STOI["<eos>"]
# The default runs: the paper's comparison. The two with a moving lambda are opt-in (--runs): at the
# default lr NSR does not degrade, the case they are for, and they would add a third to the wall-clock.
PAPER_RUNS = ("psr", "nsr", "w_reinforce", "grpo")
# Past the paper (opt-in): MaxRL (arXiv 2602.02710) and Pass@k training (arXiv 2508.10751), the registered
# group objectives of objectives.py.
GROUP_RUNS = ("maxrl", "passk")
RUNS = (*PAPER_RUNS, "reinforce", "w_reinforce_sched", "w_reinforce_adaptive", *GROUP_RUNS)
# The runs that are W-REINFORCE (lambda * PSR + NSR); lambda_source gives their lambda per step.
LAMBDA_RUNS = ("w_reinforce", "reinforce", "w_reinforce_sched", "w_reinforce_adaptive")
CLIP = 0.2  # docs/paper.md §2
# OpenRLHF's PolicyLoss clamps log(pi / pi_old) to +-20 before exp (ratio finite, no overflow).
LOG_RATIO_CLAMP = 20.0
TRAIN_PROBLEMS = 2000  # the training pool (pretraining and RL prompts), fewer if the task has fewer
DEV_PROBLEMS, DEV_SAMPLES = 64, 8  # pretraining's stopping check: held out from training and evaluation
PRETRAIN_CHECK = 25  # pretraining steps between two checks
N_POSITIONS = 64  # the policy's context: prompt plus answer must fit
N_HEADS = 4  # attention heads: --width must split evenly across them
# Every tolerance the claim checks use; the claim texts are written from these, so none is hidden.
CLAIM_TOLERANCE = 0.01  # pass@k "kept" / "lowered": 1 point
CLOSE_TO_GRPO = 0.03  # pass@1 "close to GRPO's": within 3 points
ENTROPY_BAND = 0.15  # claim "NSR keeps the entropy near the base model's": within 15% of it
DEFAULT_SEEDS = "0-4"  # enough seeds to judge the claims on their intervals


@dataclass(frozen=True)
class Config:
    seed: int = 0
    operands: int = 3  # numbers added per problem
    digits: int = 2  # digits per number
    layers: int = 2
    width: int = 64
    # Pretraining stops once the pass@1 on held-out dev problems reaches pretrain_target (checked
    # every PRETRAIN_CHECK steps), at most pretrain_steps: one base per seed at a chosen ability, so
    # seeds differ in their RL runs rather than in their bases (a step count gave 9% to 48% pass@1).
    pretrain_target: float = 0.2
    pretrain_steps: int = 3000
    pretrain_batch: int = 32
    pretrain_lr: float = 3e-3
    steps: int = 120  # RL steps (rollout batches), as the paper's ~120
    prompts: int = 32  # prompts per rollout batch
    samples: int = 8  # samples per prompt, as the paper's 8
    lr: float = 5e-5
    lam: float = 0.1  # w_reinforce lambda, the paper's; w_reinforce_adaptive's upper bound
    # w_reinforce_sched's lambda per step (schedules.Schedule); None: default_schedule(steps, lam)
    lam_schedule: Optional[str] = None
    # w_reinforce_adaptive keeps the rollout entropy above this fraction of its first-step value:
    # chosen by argument, not tuned: the report's own "near the base model" band (claim 2), so
    # positive samples come in while the entropy is within what counts as kept, NSR alone below.
    lam_target: float = 1 - ENTROPY_BAND
    # passk's k: half of the 8 samples, chosen here (the objective takes k as a setting): between k = 1
    # (close to GRPO) and k = n - 1 (the most exploration it allows).
    passk_k: int = 4
    ignored_samples: str = "drop"
    eval_problems: int = 200
    eval_samples: int = 64
    runs: Tuple[str, ...] = PAPER_RUNS

    def check(self) -> "Config":
        """The config, validated, with ``lam_schedule`` resolved to its canonical text (ValueError if invalid)."""
        positive = {k: v for k, v in asdict(self).items()
                    if isinstance(v, (int, float)) and k not in ("seed", "lam", "lam_target", "pretrain_target")}  # fmt: skip
        bad = [f"--{k.replace('_', '-')} {v}" for k, v in positive.items() if not 0 < v < math.inf]  # nan too
        if bad:
            raise ValueError(f"must be positive: {', '.join(bad)}")
        if not 0 <= self.lam < math.inf:
            raise ValueError(f"--lam must be >= 0 and finite, got {self.lam}")
        if not 0 < self.pretrain_target < 1:  # nan too
            raise ValueError(f"--pretrain-target must be in (0, 1) (a held-out pass@1), got {self.pretrain_target}")
        if not 0 < self.lam_target <= 1:  # nan too
            raise ValueError(f"--lam-target must be in (0, 1] (a fraction of the first step's entropy), got "
                             f"{self.lam_target}")  # fmt: skip
        try:
            schedule = self.schedule().canonical()
        except ValueError as err:
            raise ValueError(f"--lam-schedule {self.lam_schedule!r}: {err}") from None
        if not 1 <= self.passk_k < self.samples:
            raise ValueError(f"--passk-k must be in [1, --samples) = [1, {self.samples}), got {self.passk_k}")
        if self.eval_samples < 64:
            raise ValueError(f"--eval-samples must be >= 64 to report pass@64, got {self.eval_samples}")
        if self.width % N_HEADS:
            raise ValueError(f"--width must be a multiple of {N_HEADS} (attention heads), got {self.width}")
        if self.operands < 2:
            raise ValueError(f"--operands must be >= 2 (numbers added per problem), got {self.operands}")
        if self.digits > 4:
            raise ValueError(f"--digits must be <= 4 (digits per number), got {self.digits}")
        length = prompt_length(self) + max_new_tokens(self)
        if length > N_POSITIONS:
            raise ValueError(f"--operands {self.operands} --digits {self.digits}: a problem and its answer take "
                             f"{length} tokens, the policy has {N_POSITIONS}")  # fmt: skip
        if train_problem_count(self) < self.prompts:
            raise ValueError(f"--operands {self.operands} --digits {self.digits} give {problem_count(self)} distinct "
                             f"problems: {self.eval_problems} held out (and {DEV_PROBLEMS} for pretraining's check) leave {max(train_problem_count(self), 0)} to "
                             f"train on, fewer than --prompts {self.prompts}")  # fmt: skip
        unknown = [r for r in self.runs if r not in RUNS]
        if unknown or not self.runs:
            raise ValueError(f"unknown runs {unknown}; choose from {', '.join(RUNS)}")
        if len(set(self.runs)) < len(self.runs):
            raise ValueError(f"--runs names a run twice: {','.join(self.runs)}")
        if self.ignored_samples not in objectives.IGNORED_SAMPLES_MODES:
            raise ValueError(f"--ignored-samples must be one of {objectives.IGNORED_SAMPLES_MODES}")
        return replace(self, lam_schedule=str(schedule))

    def schedule(self) -> Schedule:
        """w_reinforce_sched's lambda per step: ``lam_schedule``, or default_schedule for these steps and lambda."""
        return Schedule.parse(
            default_schedule(self.steps, self.lam) if self.lam_schedule is None else self.lam_schedule
        )


def default_schedule(steps: int, lam: float) -> str:
    """w_reinforce_sched's default schedule: lambda 0 through step steps/3, up linearly to ``lam`` by step 2 steps/3.

    Chosen by argument, not tuned: the paper's "punish first, reward later" (docs/paper.md §5) in equal thirds:
    positive samples brought in gradually (in stages, not at once), and the run ends as the paper's
    W-REINFORCE for as many steps as it began without positive reinforcement.
    """
    start = round(steps / 3)
    return f"{start}:0,{max(round(2 * steps / 3), start + 1)}:{float(lam)!r}"


# Tiny sizes, and an easier task (three 1-digit numbers) that a width-32 model learns to the
# pretraining target in about 200 steps: every smoke batch mixes correct and incorrect samples, so psr and grpo get a
# gradient too (at 0% correct they would train on nothing and a broken psr would go unseen).
SMOKE = dict(pretrain_steps=600, pretrain_lr=6e-3, steps=4, prompts=8, eval_problems=12, width=32,
             operands=3, digits=1)  # fmt: skip


# ── Task ──


def problem_count(config: Config) -> int:
    return (9 * 10 ** (config.digits - 1)) ** config.operands


def train_problem_count(config: Config) -> int:
    return min(TRAIN_PROBLEMS, problem_count(config) - config.eval_problems - DEV_PROBLEMS)


def prompt_length(config: Config) -> int:
    return len("Q:=") + config.operands * (config.digits + 1) - 1


def make_problems(rng: random.Random, count: int, config: Config, exclude=frozenset()) -> List[Tuple[str, str]]:
    low, high = 10 ** (config.digits - 1), 10**config.digits - 1
    problems, seen = [], set(exclude)
    while len(problems) < count:
        numbers = [rng.randint(low, high) for _ in range(config.operands)]
        prompt = "Q:" + "+".join(map(str, numbers)) + "="
        if prompt not in seen:
            seen.add(prompt)
            problems.append((prompt, str(sum(numbers))))
    return problems


def encode(text: str) -> List[int]:
    return [STOI[c] for c in text]


def decode(ids) -> str:
    return "".join(VOCAB[i] for i in ids if i != EOS)


def target_text(answer: str) -> str:
    return "\\boxed{" + answer + "}"


# ── Policy ──


def build_policy(config: Config) -> torch.nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(config.seed)
    gpt = GPT2Config(vocab_size=len(VOCAB), n_positions=N_POSITIONS, n_embd=config.width, n_layer=config.layers,
                     n_head=N_HEADS, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     bos_token_id=EOS, eos_token_id=EOS)  # fmt: skip
    return GPT2LMHeadModel(gpt)


def max_new_tokens(config: Config) -> int:
    """The longest answer (the largest sum, boxed) plus <eos>."""
    return len(target_text(str(config.operands * (10**config.digits - 1)))) + 1


def pretrain(policy, problems, dev, config: Config, grade) -> dict:
    """Supervised steps on correct solutions until the dev pass@1 reaches ``pretrain_target``.

    The dev pass@1 (DEV_PROBLEMS problems x DEV_SAMPLES samples at temperature 1, problems held
    out from training and evaluation) is checked every PRETRAIN_CHECK steps; pretraining stops at
    the first check that reaches the target, or after ``pretrain_steps``. Returns the steps taken
    and the last dev pass@1.
    """
    generator = torch.Generator().manual_seed(config.seed)
    dev_generator = torch.Generator().manual_seed(config.seed + 4)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=config.pretrain_lr)
    rows = [encode(p) + encode(target_text(a)) + [EOS] for p, a in problems]
    width = max(map(len, rows))
    data = torch.full((len(rows), width), EOS)
    loss_mask = torch.zeros(len(rows), width - 1)
    prompt_len = len(problems[0][0])
    for i, row in enumerate(rows):
        data[i, : len(row)] = torch.tensor(row)
        loss_mask[i, prompt_len - 1 : len(row) - 1] = 1
    dev_golds = [a for _, a in dev for _ in range(DEV_SAMPLES)]
    dev_pass_at_1, step = 0.0, 0
    while step < config.pretrain_steps:
        policy.train()
        idx = torch.randint(len(rows), (config.pretrain_batch,), generator=generator)
        logits = policy(data[idx, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), data[idx, 1:], reduction="none")
        loss = (loss * loss_mask[idx]).sum() / loss_mask[idx].sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        if step % PRETRAIN_CHECK == 0 or step == config.pretrain_steps:
            texts = sample(policy, [p for p, _ in dev], DEV_SAMPLES, config, dev_generator)[2]
            dev_pass_at_1 = statistics.fmean(v.correct for v in grade(texts, dev_golds))
            if dev_pass_at_1 >= config.pretrain_target:
                break
    return {"steps": step, "dev_pass_at_1": dev_pass_at_1}


@torch.no_grad()
def sample(policy, prompts: List[str], n: int, config: Config, generator: torch.Generator):
    """n samples per prompt at temperature 1: (tokens, response mask, texts, mean token entropy, log-probs).

    log-probs: of each sampled response token (token_log_probs' layout; 0 past <eos>), the
    rollout's old log-probs: the same weights and fp32 forward as a separate pass (as OpenRLHF's
    actor makes), equal to it within float rounding (tested), without a tenth of the run's time.
    """
    policy.eval()
    ids = torch.tensor([encode(p) for p in prompts]).repeat_interleave(n, dim=0)
    prompt_len, new = ids.shape[1], max_new_tokens(config)
    done = torch.zeros(len(ids), dtype=torch.bool)
    mask = torch.zeros(len(ids), new)
    entropy_sum = torch.zeros(())
    sampled_log_p = torch.zeros(len(ids), new)
    past, step_input = None, ids
    for t in range(new):
        out = policy(step_input, past_key_values=past, use_cache=True)  # the cache: one token per step
        past, logits = out.past_key_values, out.logits[:, -1].float()
        log_p = torch.log_softmax(logits, dim=-1)
        token = torch.multinomial(log_p.exp(), 1, generator=generator).squeeze(1)
        token = torch.where(done, torch.full_like(token, EOS), token)
        mask[:, t] = (~done).float()
        sampled_log_p[:, t] = log_p.gather(-1, token[:, None]).squeeze(1) * mask[:, t]
        entropy_sum += (-(log_p.exp() * log_p).sum(-1) * mask[:, t]).sum()
        ids = torch.cat([ids, token[:, None]], dim=1)
        step_input = token[:, None]
        done |= token == EOS
    texts = [decode(row[prompt_len:].tolist()) for row in ids]
    return ids, mask, texts, (entropy_sum / mask.sum()).item(), sampled_log_p


def token_log_probs(policy, ids: torch.Tensor, prompt_len: int) -> torch.Tensor:
    logits = policy(ids[:, :-1]).logits.float()
    log_p = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    return log_p[:, prompt_len - 1 :]


# ── RL ──


def lambda_source(run: str, config: Config) -> Optional[Callable[[int, float], float]]:
    """For the W-REINFORCE runs: (global step, that step's rollout entropy) -> lambda; None for the others.

    Called once per step, in order (the controller keeps state). Steps count as OpenRLHF's (first
    rollout batch: 1), and the controller sees step t's entropy before step t's update, as there.
    """
    values = {
        "w_reinforce": {"w_reinforce_lambda": config.lam},
        "reinforce": {"w_reinforce_lambda": 1.0},  # REINFORCE is W-REINFORCE at lambda 1 (docs/paper.md §1)
        "w_reinforce_sched": {"w_reinforce_lambda": config.lam_schedule or str(config.schedule().canonical())},
        # The controller's start (0: NSR first) and gain (1): its defaults, as on the OpenRLHF path.
        "w_reinforce_adaptive": {"w_reinforce_lambda": config.lam, "lambda_controller": "entropy",
                                 "lambda_controller_target": config.lam_target},
    }.get(run)  # fmt: skip
    if values is None:
        return None
    # The OpenRLHF path's parameters object (objectives.objective_run): the same schedule and controller.
    objective_run = objectives.objective_run("w_reinforce", values)
    return lambda step, entropy: objective_run.arguments(step, entropy)["lam"]


def advantages_for(run: str, correct: torch.Tensor, config: Config, n: int, lam: Optional[float] = None):
    """Per-sample (advantages, carries_grad, counted): counted = in the token-mean denominator.

    ``lam``: this step's lambda for the W-REINFORCE runs (lambda_source), None for the others.
    """
    if (lam is None) != (run not in LAMBDA_RUNS):
        raise ValueError(f"{run} {'needs' if lam is None else 'takes no'} lambda, got {lam}")
    if run == "grpo":  # the group-normalised baseline (docs/paper.md §2): every sample counts
        rewards = correct.float().view(-1, n)
        adv = (rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + 1e-6)
        adv = adv.flatten()
        # Not a registered objective: a sample carries gradient when its group-normalised advantage
        # is nonzero, i.e. its prompt has both correct and incorrect samples (all-equal groups give
        # exactly 0). They still count in the denominator, as in OpenRLHF's group_norm.
        return adv, adv != 0, torch.ones_like(correct)
    if run in GROUP_RUNS:  # MaxRL, Pass@k training: from the prompt's group; every sample counts (reference code)
        extra = {"k": config.passk_k} if run == "passk" else {}
        adv, carries_grad = objectives.compute_advantages(run, correct, n, **extra)
        return adv, carries_grad, torch.ones_like(correct)
    adv, carries_grad = objectives.compute_advantages("w_reinforce" if lam is not None else run, correct, lam=lam)
    return adv, carries_grad, objectives.loss_sample_mask(carries_grad, config.ignored_samples)


def clipped_surrogate(log_probs, old_log_probs, advantages, token_mask, clip_low=CLIP, clip_high=CLIP):
    """OpenRLHF's PolicyLoss (ppo, token-level): token-mean over ``token_mask`` (empty: a zero loss).

    Same log-ratio clamp, clip band and aggregation (tests/test_mini.py checks loss and gradient
    against it); an empty mask divides by 1, as the plugin's ``_nonzero_normalisers`` does.
    """
    ratio = (log_probs - old_log_probs).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP).exp()
    adv = advantages[:, None]
    loss = -torch.min(ratio * adv, ratio.clamp(1 - clip_low, 1 + clip_high) * adv)
    return (loss * token_mask).sum() / token_mask.sum().clamp(min=1)


def weight_distance(policy, start: Dict[str, torch.Tensor]) -> float:
    """L2 distance of the weights from ``start``: 0 means the run never moved the policy."""
    with torch.no_grad():
        return math.sqrt(sum(((p - start[k]) ** 2).sum().item() for k, p in policy.named_parameters()))


def train_run(run: str, policy, train_problems, config: Config, grade) -> Dict[str, List[float]]:
    generator = torch.Generator().manual_seed(config.seed + 1)
    rng = random.Random(config.seed + 2)
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr)
    prompt_len = len(train_problems[0][0])
    start = {k: p.detach().clone() for k, p in policy.named_parameters()}
    # Figure 4's diagnostics (objectives.rollout_stats, as the OpenRLHF path logs them), the
    # entropy, and how far the weights moved (a run whose batches never carry gradient stays at 0).
    history = {key: [] for key in ("correct_frac", "prompts_all_correct_frac", "prompts_none_correct_frac",
                                   "grad_samples_frac", "entropy", "weight_change")}  # fmt: skip
    lambda_at = lambda_source(run, config)
    if lambda_at is not None:  # the lambda each step used, as the OpenRLHF path logs rollout/lambda
        history["lambda"] = []
    for step in range(1, config.steps + 1):  # OpenRLHF's global steps: the first rollout batch is 1
        batch = rng.sample(train_problems, config.prompts)
        ids, mask, texts, entropy, old = sample(policy, [p for p, _ in batch], config.samples, config, generator)
        golds = [a for _, a in batch for _ in range(config.samples)]
        correct = torch.tensor([bool(v.correct) for v in grade(texts, golds)])
        lam = None if lambda_at is None else lambda_at(step, entropy)
        adv, carries_grad, counted = advantages_for(run, correct, config, config.samples, lam)
        for key, value in objectives.rollout_stats(correct, carries_grad, config.samples).items():
            history[key].append(value)
        history["entropy"].append(entropy)
        if lam is not None:
            history["lambda"].append(lam)
        token_mask = mask * counted[:, None].float()
        policy.train()
        order = torch.randperm(len(ids), generator=generator)
        for part in order.chunk(2):  # two mini-batches per rollout batch: the second is off-policy
            loss = clipped_surrogate(
                token_log_probs(policy, ids[part], prompt_len), old[part], adv[part], token_mask[part]
            )
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)  # docs/paper.md §2: grad clip 1.0
            optimizer.step()
        history["weight_change"].append(weight_distance(policy, start))
    return history


def evaluate(policy, problems, config: Config, grade) -> dict:
    generator = torch.Generator().manual_seed(config.seed + 3)
    counts, entropies, found = [], [], 0
    for start in range(0, len(problems), 25):
        chunk = problems[start : start + 25]
        _, _, texts, entropy, _ = sample(policy, [p for p, _ in chunk], config.eval_samples, config, generator)
        verdicts = grade(texts, [a for _, a in chunk for _ in range(config.eval_samples)])
        found += sum(v.answer is not None for v in verdicts)
        for i in range(len(chunk)):
            part = verdicts[i * config.eval_samples : (i + 1) * config.eval_samples]
            counts.append((config.eval_samples, sum(v.correct for v in part)))
        entropies.append(entropy)
    ks = [k for k in default_ks(config.eval_samples) if k <= 64]
    return {
        "pass_at_k": {str(k): v for k, v in mean_pass_at_k(counts, ks).items()},
        "entropy": statistics.fmean(entropies),
        "answer_found_frac": found / (len(problems) * config.eval_samples),
        "counts": [list(c) for c in counts],  # (samples, correct) per held-out problem: the paired intervals'
    }


def held_out_problems(config: Config):
    """(evaluation, dev, training) problems of the config's seed: disjoint, the same in every process."""
    rng = random.Random(config.seed)
    eval_problems = make_problems(rng, config.eval_problems, config)
    dev = make_problems(rng, DEV_PROBLEMS, config, exclude={p for p, _ in eval_problems})
    train = make_problems(rng, train_problem_count(config), config, exclude={p for p, _ in eval_problems + dev})
    return eval_problems, dev, train


# ── Tasks: one process per core, one thread per process ──
#
# A seed's pretraining and each of its RL runs are tasks, run in spawned worker processes that use one
# torch thread each: the numbers then depend on the seed only, not on the machine's cores, the thread
# settings or the load (floating-point sums in torch's threaded kernels change order with the thread
# count, and the RL trajectories with them). The workers' count (--jobs) changes the wall-clock only.

_GRADER = None


def _worker_start() -> None:
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)


def _grade(texts, golds):
    global _GRADER
    from openrlhf_nsr.reward import GraderPool, grade_batch

    if _GRADER is None:  # one math-verify worker per process; closed at the process's exit
        _GRADER = GraderPool(workers=1)
        atexit.register(_GRADER.close)
    return grade_batch(texts, golds, _GRADER)


def pretrain_task(config: Config) -> dict:
    """Pretrain the seed's base and evaluate it: its weights (bytes) and its results."""
    start = time.time()
    eval_problems, dev, train = held_out_problems(config)
    policy = build_policy(config)
    pretraining = pretrain(policy, train, dev, config, _grade)
    state = io.BytesIO()
    torch.save(policy.state_dict(), state)
    result = {**evaluate(policy, eval_problems, config, _grade), "history": None, "pretraining": pretraining}
    return {"state": state.getvalue(), "result": result, "seconds": time.time() - start}


def run_task(config: Config, run: str, state: bytes) -> dict:
    """One RL run from the seed's base, then its evaluation."""
    start = time.time()
    eval_problems, _, train = held_out_problems(config)
    policy = build_policy(config)
    policy.load_state_dict(torch.load(io.BytesIO(state)))
    history = train_run(run, policy, train, config, _grade)
    result = {**evaluate(policy, eval_problems, config, _grade), "history": history}
    return {"result": result, "seconds": time.time() - start}


class _Inline:
    """--jobs 1: each task in this process, at submission, with one torch thread (no worker's start to wait for)."""

    def __enter__(self):
        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        torch.set_num_threads(self.threads)

    def submit(self, task, *args) -> Future:
        future = Future()
        future.set_result(task(*args))
        return future


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def run_all(config: Config, seeds: List[int], jobs: int, log=print) -> Dict[int, dict]:
    """Every seed's base and runs, in ``jobs`` worker processes: {seed: {"base": ..., run: ...}}."""
    per_seed: Dict[int, dict] = {seed: {} for seed in seeds}
    tasks = len(seeds) * (1 + len(config.runs))
    context = multiprocessing.get_context("spawn")  # a clean interpreter: no inherited threads or state
    workers = min(jobs, tasks)
    executor = _Inline() if workers == 1 else ProcessPoolExecutor(workers, context, initializer=_worker_start)
    with executor as pool:
        pending = {pool.submit(pretrain_task, replace(config, seed=seed)): (seed, "base") for seed in seeds}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: pending[f]):
                seed, run = pending.pop(future)
                out = future.result()
                per_seed[seed][run] = out["result"]
                extra = ""
                if run == "base":
                    p = out["result"]["pretraining"]
                    extra = f", pretrained {p['steps']} steps to dev pass@1 {p['dev_pass_at_1']:.3f}"
                    for name in config.runs:
                        task = pool.submit(run_task, replace(config, seed=seed), name, out["state"])
                        pending[task] = (seed, name)
                r = out["result"]
                log(f"  seed {seed} {run}: pass@1 {r['pass_at_k']['1']:.3f} pass@64 {r['pass_at_k']['64']:.3f}"
                    f"{extra} ({out['seconds']:.0f} s)", flush=True)  # fmt: skip
    return {seed: {run: per_seed[seed][run] for run in ("base", *config.runs)} for seed in seeds}


# ── Report ──

# The comparisons the report makes, as (A, B): A - B, paired within each seed.
CONTRASTS = (("nsr", "psr"), ("w_reinforce", "grpo"), ("nsr", "grpo"), ("maxrl", "w_reinforce"), ("passk", "grpo"))
# Their look in paired.png (each run minus its base takes the run's): nsr - psr and nsr - grpo apart.
CONTRAST_STYLES = {"nsr - psr": dict(color="tab:purple", ls="-", marker="o"),
                   "w_reinforce - grpo": dict(color="tab:green", ls="--", marker="D"),
                   "nsr - grpo": dict(color="tab:blue", ls="-.", marker="s"),
                   "maxrl - w_reinforce": dict(color="tab:pink", ls="--", marker="*"),
                   "passk - grpo": dict(color="black", ls=":", marker="h")}  # fmt: skip


def contrasts(runs) -> List[Tuple[str, str]]:
    pairs = [(run, "base") for run in runs] + [c for c in CONTRASTS if set(c) <= set(runs)]
    return list(dict.fromkeys(pairs))


def paired_table(per_seed: Dict[int, dict], runs) -> Dict[str, Dict[str, paired.Interval]]:
    """{"A - B": {"1": Interval, ..., "64": ..., "entropy": ..., "entropy_rel": ...}} over the seeds.

    pass@k: per held-out problem (metrics.pass_at_k from its counts), paired within the seed
    (paired.paired_difference). entropy: A's minus B's, in nats per token; entropy_rel: the same as a
    fraction of B's (one value per seed, paired.scalar_difference).
    """
    seeds = list(per_seed)
    ks = list(per_seed[seeds[0]]["base"]["pass_at_k"])
    table = {}
    for a, b in contrasts(runs):
        row = {}
        for k in ks:
            values = {
                r: [paired.per_problem_pass_at_k(per_seed[s][r]["counts"], int(k)) for s in seeds] for r in (a, b)
            }
            row[k] = paired.paired_difference(values[a], values[b])
        ent = {r: [per_seed[s][r]["entropy"] for s in seeds] for r in (a, b)}
        row["entropy"] = paired.scalar_difference(ent[a], ent[b])
        row["entropy_rel"] = paired.scalar_difference([x / y - 1 for x, y in zip(ent[a], ent[b])], [0.0] * len(seeds))
        table[f"{a} - {b}"] = row
    return table


# The paper's claims (docs/paper.md §4; the paper's Figures 2-4), each a test on one interval of the paired table:
# (claim, contrast, column, test, line). Tolerances are stated in the claim's text.
CLAIM_TOLERANCE = 0.01  # pass@64 "kept": at most 1 point below the base model's
CLOSE_TO_GRPO = 0.03  # pass@1 "close to GRPO's": within 3 points


def claims_for(top: str) -> List[tuple]:
    tol, close = f"{100 * CLAIM_TOLERANCE:g} point", f"{100 * CLOSE_TO_GRPO:g} points"
    return [
        (f"PSR lowers pass@{top} (psr - base < 0)", "psr - base", top, paired.below, 0.0),
        (f"NSR keeps pass@{top} (nsr - base > -{tol})", "nsr - base", top, paired.above, -CLAIM_TOLERANCE),
        (f"W-REINFORCE keeps pass@{top} (w_reinforce - base > -{tol})", "w_reinforce - base", top, paired.above,
         -CLAIM_TOLERANCE),
        (f"NSR beats PSR at pass@{top} (nsr - psr > 0)", "nsr - psr", top, paired.above, 0.0),
        ("PSR lowers the entropy (psr - base < 0)", "psr - base", "entropy", paired.below, 0.0),
        ("NSR keeps more entropy than PSR (nsr - psr > 0)", "nsr - psr", "entropy", paired.above, 0.0),
        (f"NSR keeps the entropy within {ENTROPY_BAND:.0%} of the base model's", "nsr - base", "entropy_rel",
         paired.within, ENTROPY_BAND),
        ("NSR improves pass@1 (nsr - base > 0)", "nsr - base", "1", paired.above, 0.0),
        (f"NSR's pass@1 is within {close} of GRPO's", "nsr - grpo", "1", paired.within, CLOSE_TO_GRPO),
        (f"W-REINFORCE's pass@1 is within {close} of GRPO's", "w_reinforce - grpo", "1", paired.within,
         CLOSE_TO_GRPO),
    ]  # fmt: skip


def judge_claims(table: Dict[str, Dict[str, paired.Interval]], top: str) -> List[dict]:
    """Each claim whose runs were trained, with its interval and verdict (paired.HOLDS / FAILS / NOT_SEPARABLE)."""
    out = []
    for claim, contrast, column, test, line in claims_for(top):
        if contrast in table:
            interval = table[contrast][column]
            out.append({"claim": claim, "contrast": contrast, "column": column, "verdict": test(interval, line),
                        "interval": asdict(interval)})  # fmt: skip
    return out


def cell(interval: paired.Interval, column: str) -> str:
    if column == "entropy":
        return interval.text(3) if interval.n > 1 else f"{interval.mean:+.3f}"
    scaled = interval.scaled(100)
    return scaled.text(1) if interval.n > 1 else f"{scaled.mean:+.1f}"


def setup_line(config: Config, seeds) -> str:
    return (f"{config.layers}-layer width-{config.width} GPT-2 adding {config.operands} {config.digits}-digit numbers; "
            f"RL {config.steps} steps x {config.prompts} prompts x {config.samples} samples, lr {config.lr:g}; "
            f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''}")  # fmt: skip


def write_report(config: Config, per_seed: Dict[int, dict], out: Path, seconds: float, smoke: bool = False) -> dict:
    seeds = list(per_seed)
    ks = list(per_seed[seeds[0]]["base"]["pass_at_k"])
    top = ks[-1]
    means = mean_over_seeds(per_seed)
    table = paired_table(per_seed, config.runs)
    claims = [] if smoke else judge_claims(table, top)
    crossover = paired.crossover_k({int(k): table["nsr - psr"][k] for k in ks}) if "nsr - psr" in table else None
    results = {"config": asdict(config), "seeds": seeds, "seconds": seconds, "smoke": smoke, "summary": means,
               "paired": {c: {col: asdict(i) for col, i in row.items()} for c, row in table.items()},
               "claims": claims, "crossover_k": crossover,
               "per_seed": {str(s): per_seed[s] for s in seeds}}  # fmt: skip
    (out / "results.json").write_text(json.dumps(results, indent=2))
    plot(config, per_seed, means, table, out, smoke)
    over = "seeds" if len(seeds) > 1 else "problems"
    lines = [
        "# The paper's experiment in miniature" + (" (smoke run)" if smoke else ""),
        "",
    ]
    if smoke:
        lines += ["**Smoke run: it checks that the pipeline runs end to end. Its sizes are tiny and its numbers mean "
                  "nothing; no claim is judged.**", ""]  # fmt: skip
    lines += [
        f"{setup_line(config, seeds)} ({', '.join(map(str, seeds))}); pretraining until held-out dev pass@1 >= "
        f"{config.pretrain_target:g} (at most {config.pretrain_steps} steps); clip {CLIP}"
        f"{ignored_samples_note(config)}; held-out: {config.eval_problems} problems x {config.eval_samples} samples "
        f"per seed. Wall-clock: {seconds:.0f} s.",
        "",
        "## The bases (one per seed)",
        "",
        "| seed | pretraining steps | dev pass@1 | pass@1 | pass@64 | entropy |",
        "|---|---|---|---|---|---|",
    ]
    for s in seeds:
        b = per_seed[s]["base"]
        lines.append(f"| {s} | {b['pretraining']['steps']} | {100 * b['pretraining']['dev_pass_at_1']:.1f} | "
                     f"{100 * b['pass_at_k']['1']:.1f} | {100 * b['pass_at_k'][top]:.1f} | {b['entropy']:.3f} |")  # fmt: skip
    lines += ["", f"## Paired differences, A - B (points of pass@k; entropy in nats/token){'' if smoke else ''}", "",
              ("95% intervals over the seeds: each seed's difference is the mean over its held-out problems of A's "
               "pass@k minus B's (both trained from that seed's base), the interval Student's t over the seeds "
               "(openrlhf_nsr/paired.py)." if over == "seeds" else
               "One seed: 95% intervals over its held-out problems only (Student's t over the per-problem "
               "differences); they leave out the training's randomness, so no claim can be judged from them "
               "(run several seeds: --seeds)."),
              "",
              "| A - B | " + " | ".join(f"pass@{k}" for k in ks) + " | entropy |",
              "|---|" + "---|" * (len(ks) + 1)]  # fmt: skip
    for contrast, row in table.items():
        lines.append(
            f"| {contrast} | " + " | ".join(cell(row[k], k) for k in ks) + f" | {cell(row['entropy'], 'entropy')} |"
        )
    lines += ["", "Means over the seeds:", "", "| run | " + " | ".join(f"pass@{k}" for k in ks) + " | entropy |",
              "|---|" + "---|" * (len(ks) + 1)]  # fmt: skip
    for run, m in means.items():
        lines.append(
            f"| {run} | " + " | ".join(f"{100 * m['pass_at_k'][k]:.1f}" for k in ks) + f" | {m['entropy']:.3f} |"
        )
    lines += lambda_lines(config, per_seed)
    if not smoke:
        lines += ["", "## The paper's claims, judged on their intervals", "",
                  "holds: the whole 95% interval is on the claimed side; fails: the whole interval is on the other "
                  "side; not separable: the interval straddles the line (noise at this size cannot tell)." +
                  ("" if over == "seeds" else " With one seed every claim is not separable."), ""]  # fmt: skip
        for c in claims:
            i = paired.Interval(**c["interval"])
            lines.append(f"- **{c['verdict']}**: {c['claim']}: {c['contrast']} {c['column']} = {cell(i, c['column'])}"
                         if c["column"] != "entropy_rel" else
                         f"- **{c['verdict']}**: {c['claim']}: {c['contrast']} = {i.scaled(100).text(1)} %")  # fmt: skip
        if crossover is not None:
            lines.append(f"- PSR's pass@k falls below NSR's (Figure 2's crossover): {crossover_text(crossover, top)}")
    lines += ["", "Plots: `passk.png` (pass@k), `paired.png` (the paired differences with their intervals), "
              "`training.png` (correct samples, entropy and, when it moves, lambda per step).",
              "Every number: `results.json` (per problem: `per_seed.SEED.RUN.counts`; per step: `...history`)."]  # fmt: skip
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return results


def crossover_text(crossover: dict, top: str) -> str:
    """Where PSR's pass@k falls below NSR's, from paired.crossover_k of NSR - PSR."""
    est, low, high = crossover["estimate"], crossover["low"], crossover["high"]
    if est is None:
        reach = (f"its interval reaches above 0 from k = {low} on" if low is not None
                 else "its interval is below 0 up to the largest k")  # fmt: skip
        return f"not reached up to k = {top}: NSR - PSR's mean stays below 0 ({reach})"
    return f"from k = {est} (95% range: k = {low} to {'beyond ' + top if high is None else high})"


def lambda_lines(config: Config, per_seed: Dict[int, dict]) -> List[str]:
    """The report's lambda section: how each W-REINFORCE run set lambda, and its mean over the steps and seeds."""
    how = {
        "w_reinforce": f"constant {config.lam:g} (the paper's)",
        "reinforce": "constant 1 (REINFORCE)",
        "w_reinforce_sched": config.schedule().describe() + " over the RL steps",
        "w_reinforce_adaptive": f"entropy controller: kept in [0, {config.lam:g}], from 0, up while the rollout "
        f"entropy is above {config.lam_target:g} x its first-step value, down toward 0 (NSR) below it",
    }
    runs = [run for run in config.runs if run in LAMBDA_RUNS]
    if not runs:
        return []
    lines = ["", "## Lambda over training", ""]
    for run in runs:
        mean = statistics.fmean(statistics.fmean(r[run]["history"]["lambda"]) for r in per_seed.values())
        lines.append(f"- {run}: {how[run]}; mean over the steps {mean:.3f}")
    return lines


def ignoring_runs(runs) -> List[str]:
    """The selected runs in which some samples carry no gradient: --ignored-samples applies to them."""
    return [r for r in runs if r in objectives.sample_ignoring_objectives()]


def ignored_samples_note(config: Config) -> str:
    runs = ignoring_runs(config.runs)
    return f", ignored samples ({' / '.join(runs)}): {config.ignored_samples}" if runs else ""


# ── Plots ──


def plot(config: Config, per_seed: Dict[int, dict], means: Dict[str, dict], table, out: Path, smoke: bool) -> None:
    plt = plotting.pyplot()
    title = setup_line(config, list(per_seed)) + (" (smoke run: the numbers mean nothing)" if smoke else "")
    for name, fig in (("passk.png", passk_figure(means, title)), ("paired.png", paired_figure(table, title)),
                      ("training.png", training_figure(per_seed, title))):  # fmt: skip
        fig.savefig(out / name, dpi=120)
        plt.close(fig)


def mean_over_seeds(per_seed: Dict[int, dict]) -> Dict[str, dict]:
    """Per run: pass@k and entropy, each the mean over the seeds (the report's table and passk.png)."""
    seeds = list(per_seed)
    ks = list(per_seed[seeds[0]]["base"]["pass_at_k"])
    return {run: {"pass_at_k": {k: statistics.fmean(per_seed[s][run]["pass_at_k"][k] for s in seeds) for k in ks},
                  "entropy": statistics.fmean(per_seed[s][run]["entropy"] for s in seeds)}
            for run in per_seed[seeds[0]]}  # fmt: skip


def passk_figure(means: Dict[str, dict], title: str):
    fig, ax = plotting.pyplot().subplots(figsize=(6.5, 4.5))
    ks = list(means["base"]["pass_at_k"])
    for run, m in means.items():
        ys = [100 * m["pass_at_k"][k] for k in ks]
        ax.plot([int(k) for k in ks], ys, **plotting.style(run), ms=4, lw=1.5, label=run)
    ax.set_xscale("log", base=2)
    ax.set_xticks([int(k) for k in ks], ks)
    ax.set(xlabel="k", ylabel="pass@k (%) on held-out problems, mean over seeds")
    ax.set_title("pass@k after training\n" + title, fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def paired_figure(table, title: str):
    fig, axes = plotting.pyplot().subplots(1, 2, figsize=(12, 4.5))
    groups = ([c for c in table if c.endswith(" - base")], [c for c in table if not c.endswith(" - base")])
    for ax, contrasts_drawn, what in zip(axes, groups, ("each run minus its base", "objective minus objective")):
        for j, contrast in enumerate(contrasts_drawn):
            ks = [k for k in table[contrast] if k.isdigit()]
            xs = [int(k) * 2 ** ((j - (len(contrasts_drawn) - 1) / 2) * 0.06) for k in ks]  # side by side
            means = [100 * table[contrast][k].mean for k in ks]
            errors = [[100 * (table[contrast][k].mean - table[contrast][k].low) for k in ks],
                      [100 * (table[contrast][k].high - table[contrast][k].mean) for k in ks]]  # fmt: skip
            look = CONTRAST_STYLES.get(contrast) or plotting.style(contrast.split(" - ")[0])
            ax.errorbar(xs, means, yerr=errors, **look, ms=4, capsize=2, label=contrast)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xscale("log", base=2)
        ks = [k for k in next(iter(table.values())) if k.isdigit()]
        ax.set_xticks([int(k) for k in ks], ks)
        ax.set(xlabel="k", ylabel="difference in pass@k (points), 95% interval")
        ax.set_title(f"Paired differences: {what}", fontsize=9)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
        else:
            ax.set_axis_off()
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return fig


def training_figure(per_seed: Dict[int, dict], title: str):
    seeds = list(per_seed)
    runs = [r for r in per_seed[seeds[0]] if r != "base"]

    def mean_curve(run, key):
        return [statistics.fmean(step) for step in zip(*(per_seed[s][run]["history"][key] for s in seeds))]

    lambda_runs = [r for r in runs if "lambda" in per_seed[seeds[0]][r]["history"] and r != "reinforce"]
    moving = [r for r in lambda_runs if len(set(mean_curve(r, "lambda"))) > 1]
    panels = [("correct_frac", "correct samples in the rollout batch"),
              ("entropy", "policy entropy on its samples (nats/token)")]  # fmt: skip
    if moving:  # a constant lambda says nothing a legend cannot: the panel only when lambda moves
        panels.append(("lambda", "W-REINFORCE lambda"))
    plt = plotting.pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), squeeze=False)
    steps = len(per_seed[seeds[0]][runs[0]]["history"]["entropy"])
    window = max(1, steps // 10)
    for ax, (key, label) in zip(axes[0], panels):
        for run in lambda_runs if key == "lambda" else runs:
            curve = mean_curve(run, key)
            xs = range(1, len(curve) + 1)
            s = plotting.style(run)
            ax.plot(xs, curve, color=s["color"], lw=0.8, alpha=0.25)  # raw, faint
            ax.plot(xs, plotting.smooth(curve, window), color=s["color"], ls=s["ls"], lw=1.8, label=run)
        if key == "entropy":
            base = statistics.fmean(per_seed[s]["base"]["entropy"] for s in seeds)
            ax.axhline(base, color=plotting.STYLES["base"]["color"], ls=":", lw=1.2, label="base (held-out)")
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.set(xlabel="RL step (first rollout batch: 1)", ylabel=label)
        how = [*(["mean over seeds"] if len(seeds) > 1 else []),
               f"{window}-step average (raw faint)" if window > 1 else "per step"]  # fmt: skip
        ax.set_title(f"{label.split(' (')[0]}: {', '.join(how)}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return fig


# ── Command line ──

INT_OPTIONS = ("steps", "prompts", "samples", "pretrain_steps", "layers", "width", "operands", "digits",
               "eval_problems", "eval_samples")  # fmt: skip


def parse_args(argv: Optional[List[str]] = None) -> Tuple[Config, List[int], Path, int, bool]:
    p = argparse.ArgumentParser(prog="python -m openrlhf_nsr.mini", description=__doc__.split("\n\n")[0])
    d = Config()
    p.add_argument("--out", type=Path, default=Path("runs/mini"), help="report folder (default runs/mini)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes, easier sums, one seed: checks the pipeline in seconds, judges no claim "
                        "(default: off)")  # fmt: skip
    p.add_argument("--seeds", default=None,
                   help=f"comma-separated seeds, or FIRST-LAST (default {DEFAULT_SEEDS}; --smoke: 0)")  # fmt: skip
    p.add_argument("--jobs", type=int, default=None,
                   help="worker processes, one torch thread each: change the wall-clock, never the numbers (default: "
                        f"the usable cores, {usable_cores()} here; --smoke: 1, its tasks are shorter than a worker's "
                        "start); 1 runs the tasks in this process")  # fmt: skip
    p.add_argument(
        "--runs", default=",".join(d.runs), help=f"comma-separated, from {', '.join(RUNS)} (default {','.join(d.runs)})"
    )
    p.add_argument("--lr", type=float, default=d.lr, help=f"RL learning rate, Adam (default {d.lr:g})")
    p.add_argument("--pretrain-target", type=float, default=None,
                   help="pretraining stops once the held-out dev pass@1 reaches this (checked every "
                        f"{PRETRAIN_CHECK} steps; --pretrain-steps caps it) (default {d.pretrain_target:g})")  # fmt: skip
    p.add_argument("--lam", type=float, default=d.lam,
                   help="w_reinforce lambda, w_reinforce_adaptive's upper bound, w_reinforce_sched's final value in "
                        "its default schedule (default 0.1, the paper's)")  # fmt: skip
    p.add_argument("--lam-schedule", default=None,
                   help="w_reinforce_sched's lambda: STEP:VALUE,... over the RL steps (first step 1), linear in "
                        "between, constant outside (default: 0 until steps/3, up to --lam by 2 steps/3)")  # fmt: skip
    p.add_argument("--lam-target", type=float, default=None,
                   help="w_reinforce_adaptive: keep the rollout entropy above this fraction of its first-step "
                        f"value, in (0, 1] (default {d.lam_target:g})")  # fmt: skip
    ignoring = " / ".join(objectives.sample_ignoring_objectives())
    p.add_argument("--ignored-samples", default=None, help=f"{ignoring} runs only: drop or zero (default drop)")
    p.add_argument("--passk-k", type=int, default=None,
                   help=f"passk run only: the k of the pass@k it trains for, 1 <= k < --samples (default {d.passk_k})")  # fmt: skip
    for name in INT_OPTIONS:
        value = getattr(d, name)
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=None,
                       help=f"(default {value}" + (f"; --smoke: {SMOKE[name]})" if name in SMOKE else ")"))  # fmt: skip
    args = p.parse_args(argv)
    seeds = parse_seeds(p, args.seeds if args.seeds is not None else "0" if args.smoke else DEFAULT_SEEDS)
    if args.jobs is None:
        args.jobs = 1 if args.smoke else usable_cores()
    if args.jobs < 1:
        p.error(f"--jobs must be >= 1 (worker processes), got {args.jobs}")
    overrides = dict(SMOKE) if args.smoke else {}
    for name in INT_OPTIONS:
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    ignored = d.ignored_samples if args.ignored_samples is None else args.ignored_samples
    overrides.update(lr=args.lr, lam=args.lam, ignored_samples=ignored, lam_schedule=args.lam_schedule,
                     runs=tuple(r.strip() for r in args.runs.split(",") if r.strip()))  # fmt: skip
    if args.pretrain_target is not None:
        overrides["pretrain_target"] = args.pretrain_target
    if args.lam_target is not None:
        overrides["lam_target"] = args.lam_target
    if args.passk_k is not None:
        overrides["passk_k"] = args.passk_k
    try:
        config = replace(d, **overrides).check()
    except ValueError as err:
        p.error(str(err))
    if args.ignored_samples is not None and not ignoring_runs(config.runs):
        # As the training CLI (train_ppo_ray.finalize_args): a flag that would change nothing is refused.
        users = " or ".join(objectives.sample_ignoring_objectives())
        train = "trains" if len(config.runs) == 1 else "train"
        p.error(f"--ignored-samples only applies to runs in which some samples carry no gradient ({users}); "
                f"{', '.join(config.runs)} {train} on every sample, so there is nothing to drop or zero: remove the "
                f"flag or add {users} to --runs")  # fmt: skip
    for flag, value, run in (("--lam-schedule", args.lam_schedule, "w_reinforce_sched"),
                             ("--lam-target", args.lam_target, "w_reinforce_adaptive"),
                             ("--passk-k", args.passk_k, "passk")):  # fmt: skip
        if value is not None and run not in config.runs:  # as --ignored-samples: a flag that changes nothing
            p.error(f"{flag} only applies to the {run} run, which --runs {','.join(config.runs)} leaves out: remove "
                    f"the flag or add {run} to --runs")  # fmt: skip
    return config, seeds, args.out, args.jobs, args.smoke


def parse_seeds(p: argparse.ArgumentParser, text: str) -> List[int]:
    try:
        if "-" in text.strip().lstrip("-") and "," not in text:
            first, last = (int(v) for v in text.split("-", 1))
            seeds = list(range(first, last + 1))
        else:
            seeds = [int(s) for s in text.split(",")]
    except ValueError:
        p.error(f"--seeds must be comma-separated integers or FIRST-LAST, got {text!r}")
    if not seeds or len(set(seeds)) < len(seeds):
        p.error(f"--seeds must name each seed once, at least one, got {text!r}")
    return seeds


def main(argv: Optional[List[str]] = None) -> int:
    config, seeds, out, jobs, smoke = parse_args(argv)
    out.mkdir(parents=True, exist_ok=True)
    where = f"in {jobs} worker processes" if jobs > 1 else "in this process"
    print(f"seeds {','.join(map(str, seeds))}: pretraining, then {', '.join(config.runs)}, {where}, one torch thread "
          "each", flush=True)  # fmt: skip
    start = time.time()
    per_seed = run_all(config, seeds, jobs)
    write_report(config, per_seed, out, time.time() - start, smoke)
    print((out / "report.md").read_text())
    print(f"written: {out}/report.md, results.json, passk.png, paired.png, training.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
