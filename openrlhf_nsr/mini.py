"""The paper's experiment in miniature, on CPU: one command, about 4.5 minutes on 2 cores.

    python -m openrlhf_nsr.mini                       # full default run, report in runs/mini
    python -m openrlhf_nsr.mini --smoke --out DIR     # the whole pipeline in about 10 seconds
    python -m openrlhf_nsr.mini --seeds 0,1,2         # several seeds: mean and spread
    python -m openrlhf_nsr.mini --lr 1e-4 --runs nsr,w_reinforce,w_reinforce_sched,w_reinforce_adaptive

The policy is a small character-level transformer (GPT-2 architecture, trained here on the spot:
no download) that learns to add numbers and write the sum as ``\\boxed{...}``. Its pretraining
stops early on purpose, so it has real but imperfect ability: pass@1 well below pass@64, as the
paper's base models. Then, from the same starting weights, one RL run per objective:

- ``psr``, ``nsr``, ``w_reinforce`` (lambda 0.1), ``reinforce`` (lambda 1): advantages from the
  registered objective functions (objectives.py, the ones the OpenRLHF path uses);
- ``grpo``: the group-normalised baseline, (r - mean) / (std + 1e-6) over each prompt's samples;
- ``w_reinforce_sched``, ``w_reinforce_adaptive`` (not in the default runs: select them with
  ``--runs``): W-REINFORCE whose lambda moves over training, the paper's advice "punish first,
  reward later" and "watch diversity" (§5-6) made concrete with schedules.py: a ``Schedule`` over
  the RL steps (``--lam-schedule``; by default lambda 0 for the first third of the steps, brought
  up linearly to ``--lam`` over the second third, ``--lam`` after), or the
  ``EntropyLambdaController`` (``--lam-target``, upper bound ``--lam``), fed each step the entropy
  this module records for the step's rollouts (the exact mean per-token entropy of the sampling
  distribution; the OpenRLHF path feeds its unbiased estimate, the mean -log p of the sampled
  tokens). Steps count as OpenRLHF's global steps: the first rollout batch is step 1.

Each step samples n answers per prompt at temperature 1, grades them with the project's reward
(reward.grade_batch, math-verify on the boxed answer), and takes PPO clipped-surrogate steps
(clip 0.2, two mini-batches per rollout batch, one epoch) with the token-mean over the kept
samples (``--ignored-samples drop``) or all samples (``zero``): the loss of OpenRLHF's
``PolicyLoss`` (log-ratio clamp included; tested for parity), as the OpenRLHF integration uses.
The report (``report.md``, ``results.json``, ``passk.png``, ``training.png``) gives pass@k for
k = 1..64 on held-out problems (metrics.pass_at_k), the policy entropy, the share of correct
samples and lambda over training, and checks the paper's three claims against the numbers, whatever
they are.

This is a sandbox for the objectives, not a replacement for OpenRLHF: plain PyTorch, one process.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch

from openrlhf_nsr import objectives
from openrlhf_nsr.metrics import default_ks, mean_pass_at_k
from openrlhf_nsr.schedules import EntropyLambdaController, Schedule

VOCAB = list("0123456789+=Q:\\boxed{}") + ["<eos>"]  # characters are unique: one token each
STOI = {c: i for i, c in enumerate(VOCAB)}
EOS = STOI["<eos>"]
# The default runs: the paper's comparison. The two with a moving lambda are opt-in (--runs): at the
# default lr NSR does not degrade, the case they are for, and they would add a third to the wall-clock.
PAPER_RUNS = ("psr", "nsr", "w_reinforce", "reinforce", "grpo")
RUNS = (*PAPER_RUNS, "w_reinforce_sched", "w_reinforce_adaptive")
# The runs that are W-REINFORCE (lambda * PSR + NSR); lambda_source gives their lambda per step.
LAMBDA_RUNS = ("w_reinforce", "reinforce", "w_reinforce_sched", "w_reinforce_adaptive")
# One colour per run, the same in every plot, so a curve is recognised from one figure to the next.
COLOURS = {"base": "tab:gray", "psr": "tab:red", "nsr": "tab:blue", "w_reinforce": "tab:green",
           "reinforce": "tab:purple", "grpo": "tab:orange", "w_reinforce_sched": "tab:olive",
           "w_reinforce_adaptive": "tab:cyan"}  # fmt: skip
CLIP = 0.2  # paper §2
# OpenRLHF's PolicyLoss clamps log(pi / pi_old) to +-20 before exp (ratio finite, no overflow).
LOG_RATIO_CLAMP = 20.0
TRAIN_PROBLEMS = 2000  # the training pool (pretraining and RL prompts), fewer if the task has fewer
N_POSITIONS = 64  # the policy's context: prompt plus answer must fit
N_HEADS = 4  # attention heads: --width must split evenly across them
# Every tolerance the claim checks use; the claim texts are written from these, so none is hidden.
CLAIM_TOLERANCE = 0.01  # pass@k "kept" / "lowered": 1 point
CLOSE_TO_GRPO = 0.03  # pass@1 "close to GRPO's": within 3 points
ENTROPY_BAND = 0.15  # "near the base model": within 15% of its entropy; "collapses": down by more


@dataclass(frozen=True)
class Config:
    seed: int = 0
    operands: int = 3  # numbers added per problem
    digits: int = 2  # digits per number
    layers: int = 2
    width: int = 64
    pretrain_steps: int = 600
    pretrain_batch: int = 128
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
    ignored_samples: str = "drop"
    eval_problems: int = 200
    eval_samples: int = 64
    runs: Tuple[str, ...] = PAPER_RUNS

    def check(self) -> "Config":
        """The config, validated, with ``lam_schedule`` resolved to its canonical text (ValueError if invalid)."""
        positive = {k: v for k, v in asdict(self).items()
                    if isinstance(v, (int, float)) and k not in ("seed", "lam", "lam_target")}  # fmt: skip
        bad = [f"--{k.replace('_', '-')} {v}" for k, v in positive.items() if not 0 < v < math.inf]  # nan too
        if bad:
            raise ValueError(f"must be positive: {', '.join(bad)}")
        if not 0 <= self.lam < math.inf:
            raise ValueError(f"--lam must be >= 0 and finite, got {self.lam}")
        if not 0 < self.lam_target <= 1:  # nan too
            raise ValueError(f"--lam-target must be in (0, 1] (a fraction of the first step's entropy), got "
                             f"{self.lam_target}")  # fmt: skip
        try:
            schedule = self.schedule().canonical()
        except ValueError as err:
            raise ValueError(f"--lam-schedule {self.lam_schedule!r}: {err}") from None
        if self.eval_samples < 64:
            raise ValueError(f"--eval-samples must be >= 64 to report pass@64, got {self.eval_samples}")
        if self.width % N_HEADS:
            raise ValueError(f"--width must be a multiple of {N_HEADS} (attention heads), got {self.width}")
        if self.operands < 2 or self.digits > 4:
            raise ValueError("need --operands >= 2 and --digits <= 4")
        length = prompt_length(self) + max_new_tokens(self)
        if length > N_POSITIONS:
            raise ValueError(f"--operands {self.operands} --digits {self.digits}: a problem and its answer take "
                             f"{length} tokens, the policy has {N_POSITIONS}")  # fmt: skip
        if train_problem_count(self) < self.prompts:
            raise ValueError(f"--operands {self.operands} --digits {self.digits} give {problem_count(self)} distinct "
                             f"problems: {self.eval_problems} held out leave {max(train_problem_count(self), 0)} to "
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

    Chosen by argument, not tuned: the paper's "punish first, reward later" (§6) in equal thirds:
    positive samples brought in gradually (in stages, not at once), and the run ends as the paper's
    W-REINFORCE for as many steps as it began without positive reinforcement.
    """
    start = round(steps / 3)
    return f"{start}:0,{max(round(2 * steps / 3), start + 1)}:{float(lam)!r}"


# Tiny sizes, and an easier task (three 1-digit numbers) that a width-32 model learns in 150 steps
# to 15-45% correct: every smoke batch mixes correct and incorrect samples, so psr and grpo get a
# gradient too (at 0% correct they would train on nothing and a broken psr would go unseen).
SMOKE = dict(pretrain_steps=150, pretrain_lr=6e-3, steps=4, prompts=8, eval_problems=12, width=32,
             operands=3, digits=1)  # fmt: skip


# ── Task ──


def problem_count(config: Config) -> int:
    return (9 * 10 ** (config.digits - 1)) ** config.operands


def train_problem_count(config: Config) -> int:
    return min(TRAIN_PROBLEMS, problem_count(config) - config.eval_problems)


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


def pretrain(policy, problems, config: Config) -> None:
    """Supervised steps on correct solutions, stopped early: real but imperfect ability."""
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=config.pretrain_lr)
    rows = [encode(p) + encode(target_text(a)) + [EOS] for p, a in problems]
    width = max(map(len, rows))
    data = torch.full((len(rows), width), EOS)
    loss_mask = torch.zeros(len(rows), width - 1)
    prompt_len = len(problems[0][0])
    for i, row in enumerate(rows):
        data[i, : len(row)] = torch.tensor(row)
        loss_mask[i, prompt_len - 1 : len(row) - 1] = 1
    policy.train()
    for _ in range(config.pretrain_steps):
        idx = torch.randint(len(rows), (config.pretrain_batch,), generator=generator)
        logits = policy(data[idx, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), data[idx, 1:], reduction="none")
        loss = (loss * loss_mask[idx]).sum() / loss_mask[idx].sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@torch.no_grad()
def sample(policy, prompts: List[str], n: int, config: Config, generator: torch.Generator):
    """n samples per prompt at temperature 1: (tokens, response mask, texts, mean token entropy)."""
    policy.eval()
    ids = torch.tensor([encode(p) for p in prompts]).repeat_interleave(n, dim=0)
    prompt_len, new = ids.shape[1], max_new_tokens(config)
    done = torch.zeros(len(ids), dtype=torch.bool)
    mask = torch.zeros(len(ids), new)
    entropy_sum = torch.zeros(())
    for t in range(new):
        logits = policy(ids).logits[:, -1].float()
        log_p = torch.log_softmax(logits, dim=-1)
        token = torch.multinomial(log_p.exp(), 1, generator=generator).squeeze(1)
        token = torch.where(done, torch.full_like(token, EOS), token)
        mask[:, t] = (~done).float()
        entropy_sum += (-(log_p.exp() * log_p).sum(-1) * mask[:, t]).sum()
        ids = torch.cat([ids, token[:, None]], dim=1)
        done |= token == EOS
    texts = [decode(row[prompt_len:].tolist()) for row in ids]
    return ids, mask, texts, (entropy_sum / mask.sum()).item()


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
    if run == "w_reinforce":
        return lambda step, entropy: config.lam
    if run == "reinforce":  # REINFORCE is W-REINFORCE at lambda 1 (paper §4)
        return lambda step, entropy: 1.0
    if run == "w_reinforce_sched":
        schedule = config.schedule()
        return lambda step, entropy: schedule(step)
    if run == "w_reinforce_adaptive":
        # The controller's start (0: NSR first) and gain (1) are schedules.py's defaults, as on the OpenRLHF path.
        controller = EntropyLambdaController(config.lam_target, lam_max=config.lam)
        return lambda step, entropy: controller.update(entropy)
    return None


def advantages_for(run: str, correct: torch.Tensor, config: Config, n: int, lam: Optional[float] = None):
    """Per-sample (advantages, carries_grad, counted): counted = in the token-mean denominator.

    ``lam``: this step's lambda for the W-REINFORCE runs (lambda_source), None for the others.
    """
    if (lam is None) != (run not in LAMBDA_RUNS):
        raise ValueError(f"{run} {'needs' if lam is None else 'takes no'} lambda, got {lam}")
    if run == "grpo":  # the group-normalised baseline (paper §2): every sample counts
        rewards = correct.float().view(-1, n)
        adv = (rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + 1e-6)
        adv = adv.flatten()
        # Not a registered objective: a sample carries gradient when its group-normalised advantage
        # is nonzero, i.e. its prompt has both correct and incorrect samples (all-equal groups give
        # exactly 0). They still count in the denominator, as in OpenRLHF's group_norm.
        return adv, adv != 0, torch.ones_like(correct)
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
        ids, mask, texts, entropy = sample(policy, [p for p, _ in batch], config.samples, config, generator)
        golds = [a for _, a in batch for _ in range(config.samples)]
        correct = torch.tensor([bool(v.correct) for v in grade(texts, golds)])
        lam = None if lambda_at is None else lambda_at(step, entropy)
        adv, carries_grad, counted = advantages_for(run, correct, config, config.samples, lam)
        for key, value in objectives.rollout_stats(correct, carries_grad, config.samples).items():
            history[key].append(value)
        history["entropy"].append(entropy)
        if lam is not None:
            history["lambda"].append(lam)
        with torch.no_grad():
            old = token_log_probs(policy, ids, prompt_len)
        token_mask = mask * counted[:, None].float()
        policy.train()
        order = torch.randperm(len(ids), generator=generator)
        for part in order.chunk(2):  # two mini-batches per rollout batch: the second is off-policy
            loss = clipped_surrogate(
                token_log_probs(policy, ids[part], prompt_len), old[part], adv[part], token_mask[part]
            )
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)  # paper §2: grad clip 1.0
            optimizer.step()
        history["weight_change"].append(weight_distance(policy, start))
    return history


def evaluate(policy, problems, config: Config, grade) -> dict:
    generator = torch.Generator().manual_seed(config.seed + 3)
    counts, entropies, found = [], [], 0
    for start in range(0, len(problems), 25):
        chunk = problems[start : start + 25]
        _, _, texts, entropy = sample(policy, [p for p, _ in chunk], config.eval_samples, config, generator)
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
    }


def run_seed(config: Config, grade, log=print) -> dict:
    rng = random.Random(config.seed)
    eval_problems = make_problems(rng, config.eval_problems, config)
    train_problems = make_problems(rng, train_problem_count(config), config, exclude={p for p, _ in eval_problems})
    policy = build_policy(config)
    start = time.time()
    pretrain(policy, train_problems, config)
    base_state = {k: v.clone() for k, v in policy.state_dict().items()}
    results = {"base": {**evaluate(policy, eval_problems, config, grade), "history": None}}
    log(f"  seed {config.seed} base: pass@1 {results['base']['pass_at_k']['1']:.3f} "
        f"pass@64 {results['base']['pass_at_k']['64']:.3f} ({time.time() - start:.0f}s)")  # fmt: skip
    for run in config.runs:
        policy.load_state_dict(base_state)
        history = train_run(run, policy, train_problems, config, grade)
        results[run] = {**evaluate(policy, eval_problems, config, grade), "history": history}
        log(f"  seed {config.seed} {run}: pass@1 {results[run]['pass_at_k']['1']:.3f} "
            f"pass@64 {results[run]['pass_at_k']['64']:.3f} ({time.time() - start:.0f}s)")  # fmt: skip
    return results


# ── Report ──


def gap(a: float, b: float) -> float:
    """a - b rounded to 1e-9: a gap of exactly one tolerance (93.0 vs 92.0) is within it, whatever the ulp."""
    return round(a - b, 9)


def points(fraction: float) -> str:
    value = f"{100 * fraction:g}"
    return f"{value} point" + ("" if value == "1" else "s")


def aggregate(per_seed: List[dict]) -> dict:
    """Mean and spread (population std; 0 for one seed) over seeds, per run; lambda: its mean over the steps."""
    out = {}
    for run in per_seed[0]:
        ks = per_seed[0][run]["pass_at_k"]
        out[run] = {
            "pass_at_k": {k: statistics.fmean(r[run]["pass_at_k"][k] for r in per_seed) for k in ks},
            "pass_at_k_std": {k: statistics.pstdev([r[run]["pass_at_k"][k] for r in per_seed]) for k in ks},
            "entropy": statistics.fmean(r[run]["entropy"] for r in per_seed),
            "entropy_std": statistics.pstdev([r[run]["entropy"] for r in per_seed]),
        }
        if "lambda" in (per_seed[0][run]["history"] or {}):
            means = [statistics.fmean(r[run]["history"]["lambda"]) for r in per_seed]
            out[run].update(lambda_mean=statistics.fmean(means), lambda_mean_std=statistics.pstdev(means))
    return out


def check_claims(summary: dict) -> List[dict]:
    """The paper's three claims (paper-spec §4), checked on the mean numbers."""
    claims = []
    base = summary["base"]
    top = max(summary["base"]["pass_at_k"], key=int)

    def at(run, k):
        return summary[run]["pass_at_k"][k]

    if {"psr", "nsr", "w_reinforce"} <= set(summary):
        kept = all(gap(at("base", top), at(r, top)) <= CLAIM_TOLERANCE for r in ("nsr", "w_reinforce"))
        lowered = gap(at("base", top), at("psr", top)) > CLAIM_TOLERANCE
        tol = points(CLAIM_TOLERANCE)
        claims.append({
            "claim": f"1. NSR and W-REINFORCE keep pass@{top} within {tol} of the base model's or raise it; "
                     f"PSR lowers it by more than {tol}",
            "holds": kept and lowered,
            "numbers": {r: round(100 * at(r, top), 1) for r in ("base", "psr", "nsr", "w_reinforce")},
        })  # fmt: skip
    if {"psr", "nsr"} <= set(summary):
        ratio = {r: summary[r]["entropy"] / base["entropy"] for r in ("psr", "nsr")}
        claims.append({
            "claim": f"2. NSR keeps the entropy near the base model's (within {ENTROPY_BAND:.0%}); PSR collapses it "
                     f"(more than {ENTROPY_BAND:.0%} below)",
            "holds": abs(ratio["nsr"] - 1) <= ENTROPY_BAND and ratio["psr"] < 1 - ENTROPY_BAND,
            "numbers": {r: round(summary[r]["entropy"], 4) for r in ("base", "psr", "nsr")},
        })  # fmt: skip
    if {"nsr", "w_reinforce", "grpo"} <= set(summary):
        close = all(abs(gap(at(r, "1"), at("grpo", "1"))) <= CLOSE_TO_GRPO for r in ("nsr", "w_reinforce"))
        claims.append({
            "claim": f"3. NSR and W-REINFORCE reach pass@1 close to GRPO's (within {points(CLOSE_TO_GRPO)})",
            "holds": close,
            "numbers": {r: round(100 * at(r, "1"), 1) for r in ("base", "grpo", "nsr", "w_reinforce")},
        })  # fmt: skip
    return claims


def plot(per_seed: List[dict], summary: dict, out: Path) -> None:
    plt = _pyplot()
    for name, fig in (("passk.png", passk_figure(summary)), ("training.png", training_figure(per_seed, summary))):
        fig.savefig(out / name, dpi=120)
        plt.close(fig)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def passk_figure(summary: dict):
    fig, ax = _pyplot().subplots(figsize=(5.5, 4))
    for run, s in summary.items():
        ks = sorted(s["pass_at_k"], key=int)
        ax.errorbar([int(k) for k in ks], [100 * s["pass_at_k"][k] for k in ks],
                    yerr=[100 * s["pass_at_k_std"][k] for k in ks], marker="o", ms=3, capsize=2,
                    ls="--" if run == "base" else "-", color=COLOURS[run], label=run)  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xticks([int(k) for k in ks], ks)
    ax.set(xlabel="k", ylabel="pass@k (%) on held-out problems", title="pass@k after training")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def training_figure(per_seed: List[dict], summary: dict):
    fig, axes = _pyplot().subplots(1, 3, figsize=(15, 3.8))
    for key, ax, label in (("correct_frac", axes[0], "correct samples in the rollout batch"),
                           ("entropy", axes[1], "policy entropy on its samples (nats/token)"),
                           ("lambda", axes[2], "W-REINFORCE lambda (reinforce: 1, not drawn)")):  # fmt: skip
        for run in summary:
            # reinforce's constant 1 would squeeze the other lambdas (at most --lam) into the bottom tenth
            if run == "base" or key not in per_seed[0][run]["history"] or (key == "lambda" and run == "reinforce"):
                continue
            curves = [r[run]["history"][key] for r in per_seed]
            mean = [statistics.fmean(step) for step in zip(*curves)]
            ax.plot(range(1, len(mean) + 1), mean, color=COLOURS[run], label=run)
        if key == "entropy":
            ax.axhline(summary["base"]["entropy"], color=COLOURS["base"], ls="--", lw=1, label="base (held-out)")
        ax.set(xlabel="RL step (first rollout batch: 1)", ylabel=label)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    if axes[2].lines:
        axes[2].legend(fontsize=8)
    else:
        axes[2].set_axis_off()  # no W-REINFORCE run selected: no lambda to draw
    fig.tight_layout()
    return fig


def write_report(config: Config, per_seed: List[dict], seeds: List[int], out: Path, seconds: float) -> dict:
    summary = aggregate(per_seed)
    claims = check_claims(summary)
    results = {"config": asdict(config), "seeds": seeds, "seconds": seconds, "summary": summary,
               "claims": claims, "per_seed": dict(zip(map(str, seeds), per_seed))}  # fmt: skip
    (out / "results.json").write_text(json.dumps(results, indent=2))
    plot(per_seed, summary, out)
    ks = sorted(summary["base"]["pass_at_k"], key=int)
    spread = len(seeds) > 1
    lines = [
        "# The paper's experiment in miniature",
        "",
        f"Policy: a {config.layers}-layer, width-{config.width} character-level GPT-2 trained here to add "
        f"{config.operands} {config.digits}-digit numbers (answer in \\boxed{{}}), pretraining stopped after "
        f"{config.pretrain_steps} steps. RL: {config.steps} steps of {config.prompts} prompts x {config.samples} "
        f"samples at temperature 1, lr {config.lr}, clip {CLIP}{ignored_samples_note(config)}. "
        f"Held-out: {config.eval_problems} problems x {config.eval_samples} samples. Seeds: {', '.join(map(str, seeds))}"
        f"{' (mean ± std over seeds)' if spread else ''}. Wall-clock: {seconds:.0f} s.",
        "",
        "| run | " + " | ".join(f"pass@{k}" for k in ks) + " | entropy |",
        "|---|" + "---|" * (len(ks) + 1),
    ]
    for run, s in summary.items():
        cells = [
            f"{100 * s['pass_at_k'][k]:.1f}" + (f" ± {100 * s['pass_at_k_std'][k]:.1f}" if spread else "") for k in ks
        ]
        entropy = f"{s['entropy']:.3f}" + (f" ± {s['entropy_std']:.3f}" if spread else "")
        lines.append(f"| {run} | " + " | ".join(cells) + f" | {entropy} |")
    lines += lambda_lines(config, summary, spread)
    lines += ["", f"## The paper's claims, checked on these numbers{' (the means)' if spread else ''}", ""]
    for c in claims:
        numbers = ", ".join(f"{k} {v}" for k, v in c["numbers"].items())
        lines.append(f"- **{'holds' if c['holds'] else 'does not hold'}**: {c['claim']} ({numbers})")
    if len(seeds) > 1:
        lines += ["", "Per seed:", ""]
        for seed, result in zip(seeds, per_seed):
            seed_claims = check_claims(aggregate([result]))
            lines.append(
                f"- seed {seed}: "
                + "; ".join(f"claim {c['claim'][0]} {'holds' if c['holds'] else 'does not hold'}" for c in seed_claims)
            )
    lines += ["", "Plots: `passk.png` (pass@k after training), `training.png` (correct samples, entropy and lambda "
              "per step).", "Every number: `results.json` (per step: `per_seed.SEED.RUN.history`)."]  # fmt: skip
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return results


def lambda_lines(config: Config, summary: dict, spread: bool) -> List[str]:
    """The report's lambda section: how each W-REINFORCE run set lambda, and its mean over the steps."""
    how = {
        "w_reinforce": f"constant {config.lam:g} (the paper's)",
        "reinforce": "constant 1 (REINFORCE)",
        "w_reinforce_sched": config.schedule().describe() + " over the RL steps",
        "w_reinforce_adaptive": f"entropy controller: kept in [0, {config.lam:g}], from 0, up while the rollout "
        f"entropy is above {config.lam_target:g} x its first-step value, down toward 0 (NSR) below it",
    }
    runs = [run for run in summary if "lambda_mean" in summary[run]]
    if not runs:
        return []
    lines = ["", "## Lambda over training", ""]
    for run in runs:
        mean = f"{summary[run]['lambda_mean']:.3f}" + (f" ± {summary[run]['lambda_mean_std']:.3f}" if spread else "")
        lines.append(f"- {run}: {how[run]}; mean over the steps {mean}")
    return lines


def ignoring_runs(runs) -> List[str]:
    """The selected runs in which some samples carry no gradient: --ignored-samples applies to them."""
    return [r for r in runs if r in objectives.sample_ignoring_objectives()]


def ignored_samples_note(config: Config) -> str:
    runs = ignoring_runs(config.runs)
    return f", ignored samples ({' / '.join(runs)}): {config.ignored_samples}" if runs else ""


def parse_args(argv: Optional[List[str]] = None) -> Tuple[Config, List[int], Path]:
    p = argparse.ArgumentParser(prog="python -m openrlhf_nsr.mini", description=__doc__.split("\n\n")[0])
    d = Config()
    p.add_argument("--out", type=Path, default=Path("runs/mini"), help="report folder (default runs/mini)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, easier sums: the pipeline in about 10 s")
    p.add_argument("--seeds", default=str(d.seed), help="comma-separated seeds (default 0)")
    p.add_argument("--runs", default=",".join(d.runs),
                   help=f"comma-separated, from {', '.join(RUNS)} (default: {','.join(d.runs)})")  # fmt: skip
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
    p.add_argument("--ignored-samples", default=None, help=f"{ignoring} runs only: drop (default) or zero")
    for name in ("steps", "prompts", "samples", "pretrain_steps", "layers", "width", "operands", "digits",
                 "eval_problems", "eval_samples"):  # fmt: skip
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=None, help=f"default {getattr(d, name)}")
    p.add_argument("--lr", type=float, default=d.lr)
    args = p.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        p.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    overrides = dict(SMOKE) if args.smoke else {}
    for name in ("steps", "prompts", "samples", "pretrain_steps", "layers", "width", "operands", "digits",
                 "eval_problems", "eval_samples"):  # fmt: skip
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    ignored = d.ignored_samples if args.ignored_samples is None else args.ignored_samples
    overrides.update(lr=args.lr, lam=args.lam, ignored_samples=ignored, lam_schedule=args.lam_schedule,
                     runs=tuple(r.strip() for r in args.runs.split(",") if r.strip()))  # fmt: skip
    if args.lam_target is not None:
        overrides["lam_target"] = args.lam_target
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
                             ("--lam-target", args.lam_target, "w_reinforce_adaptive")):  # fmt: skip
        if value is not None and run not in config.runs:  # as --ignored-samples: a flag that changes nothing
            p.error(f"{flag} only applies to the {run} run, which --runs {','.join(config.runs)} leaves out: remove "
                    f"the flag or add {run} to --runs")  # fmt: skip
    return config, seeds, args.out


def main(argv: Optional[List[str]] = None) -> int:
    from openrlhf_nsr.reward import GraderPool, grade_batch

    config, seeds, out = parse_args(argv)
    out.mkdir(parents=True, exist_ok=True)
    pool = GraderPool(workers=1)  # the model and the grader share the CPU; answers repeat a lot (cache)

    def grade(texts, golds):
        return grade_batch(texts, golds, pool)

    start = time.time()
    per_seed = []
    try:
        for seed in seeds:
            print(f"seed {seed}: pretraining, then {', '.join(config.runs)}", flush=True)
            per_seed.append(run_seed(replace(config, seed=seed), grade))
    finally:
        pool.close()
    results = write_report(config, per_seed, seeds, out, time.time() - start)
    print((out / "report.md").read_text())
    print(f"written: {out}/report.md, results.json, passk.png, training.png")
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
