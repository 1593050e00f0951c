"""Diversity metrics, lambda at OpenRLHF's step and eval pass@k, through OpenRLHF's real code."""

import math

import pytest
import torch
from experience_builders import LetterTokenizer, make_args, make_maker, make_rollout

from openrlhf_nsr import diversity
from openrlhf_nsr.metrics import pass_at_k
from openrlhf_nsr.schedules import EntropyLambdaController

N = 4


def test_entropy_is_the_token_mean_negative_log_prob_of_the_response_tokens():
    log_probs = [torch.tensor([[-1.0, -2.0, -9.0]]), torch.tensor([[-0.5, -7.0, -7.0], [-3.0, -1.5, -7.0]])]
    masks = [torch.tensor([[1, 1, 0]]), torch.tensor([[1, 0, 0], [1, 1, 0]])]
    assert diversity.token_entropy(log_probs, masks) == pytest.approx((1 + 2 + 0.5 + 3 + 1.5) / 5)
    assert math.isnan(diversity.token_entropy([torch.zeros(1, 2)], [torch.zeros(1, 2)]))


def test_distinct_answers_per_prompt_over_n_averaged_over_prompts():
    answers = ["3", " 3", "4", None] + [None, None, "7", "7"]
    # prompt 1: {3, 4, no answer} = 3 of 4; prompt 2: {no answer, 7} = 2 of 4
    assert diversity.distinct_answers_frac(answers, N) == pytest.approx((3 / 4 + 2 / 4) / 2)
    with pytest.raises(ValueError, match="cannot be grouped"):
        diversity.distinct_answers_frac(answers[:5], N)


def test_pass_at_1_and_n_are_the_unbiased_estimates_per_prompt():
    rewards = torch.tensor([1, 0, 0, 0] + [0, 0, 0, 0] + [1, 1, 0, 1], dtype=torch.float)
    stats = diversity.pass_at_1_and_n(rewards, N)
    assert stats == pytest.approx({"pass_at_1": (1 / 4 + 0 + 3 / 4) / 3, "pass_at_n": 2 / 3})


def test_eval_pass_at_k_for_every_power_of_two_and_none_without_verdicts():
    rewards = torch.tensor([1, 0, 0, 0, 0, 0, 0, 0] + [1, 1, 0, 0, 0, 0, 0, 0], dtype=torch.float)
    ks = diversity.pass_at_ks(rewards, 8)
    assert list(ks) == [1, 2, 4, 8]
    assert ks[2] == pytest.approx((pass_at_k(8, 1, 2) + pass_at_k(8, 2, 2)) / 2)
    assert diversity.pass_at_ks(torch.tensor([0.3, 1.0]), 2) is None  # a reward model's scores: no pass@k


def encode(text):
    return [LetterTokenizer.ALPHABET.index(c) for c in text]


def rollout_with_answers(responses, rewards, order, micro_batch_size=3):
    """Experiences whose response tokens decode to ``responses`` (rollout order), shuffled by ``order``."""
    experiences = make_rollout(rewards, micro_batch_size=micro_batch_size, max_response=12, order=order)
    for experience in experiences:
        width = experience.action_mask.shape[1]
        experience.action_mask = torch.zeros_like(experience.action_mask)
        experience.sequences = experience.sequences.clone()
        for row, index in enumerate(experience.index):
            tokens = torch.tensor(encode(responses[index]))
            experience.sequences[row, -width:] = 0
            experience.sequences[row, -width : -width + len(tokens)] = tokens
            experience.action_mask[row, : len(tokens)] = True
            experience.action_log_probs[row] = -(index + 1) / 10 * experience.action_mask[row]
    return experiences


RESPONSES = ["\\boxed{3}", "\\boxed{3}", "\\boxed{4}", "no"] + ["\\boxed{12}"] * 4 + ["x", "\\boxed{1}", "y", "z"]
REWARDS = [1, 1, 0, 0] + [1, 1, 1, 1] + [0, 0, 0, 0]
ORDER = [11, 0, 5, 3, 8, 1, 10, 2, 4, 6, 9, 7]  # samples shuffled across micro-batches, as dynamic batching does


@pytest.mark.parametrize(
    "estimator,lam,mode", [("group_norm", None, None), ("nsr", None, "drop"), ("w_reinforce", 0.1, None)]
)
def test_every_estimator_gets_the_diversity_of_the_whole_batch(estimator, lam, mode):
    maker = make_maker(make_args(estimator, N, lam=lam, ignored_samples=mode))
    experiences = rollout_with_answers(RESPONSES, REWARDS, ORDER)
    tokens = {i: len(RESPONSES[i]) for i in range(12)}
    expected_entropy = sum((i + 1) / 10 * tokens[i] for i in range(12)) / sum(tokens.values())
    maker.compute_advantages_and_returns(experiences)
    stats = maker.nsr_rollout_stats
    assert stats["rollout/entropy"] == pytest.approx(expected_entropy)  # before drop mode masked anything
    # prompt 1: {3, 4, none} 3/4; prompt 2: {12} 1/4; prompt 3: {none, 1} 2/4
    assert stats["rollout/distinct_answers_frac"] == pytest.approx((3 + 1 + 2) / 4 / 3)
    assert stats["rollout/pass_at_1"] == pytest.approx((2 / 4 + 1 + 0) / 3)
    assert stats["rollout/pass_at_n"] == pytest.approx(2 / 3)
    assert ("rollout/lambda" in stats) == (estimator == "w_reinforce")


def correct_advantage(experiences):
    """The advantage the correct samples got (one value: the objective is constant per class)."""
    values = {
        round(float(exp.advantages[row][exp.action_mask[row]][0]), 6)
        for exp in experiences
        for row in range(len(exp.index))
        if exp.rewards[row] > 0.5 and exp.action_mask[row].any()
    }
    assert len(values) == 1, values
    return values.pop()


def test_a_lambda_schedule_is_evaluated_at_openrlhfs_global_step():
    maker = make_maker(make_args("w_reinforce", N, lam="0:0,4:0.1"))
    seen = []
    for step in (1, 2, 4, 9):
        maker.nsr_step = step  # what the patched BasePPOTrainer.train_step hands over
        experiences = maker.compute_advantages_and_returns(make_rollout(REWARDS))
        seen += [maker.nsr_rollout_stats["rollout/lambda"], correct_advantage(experiences)]
    assert seen == pytest.approx([0.025, 0.025, 0.05, 0.05, 0.1, 0.1, 0.1, 0.1])


def test_the_entropy_controller_sets_lambda_from_each_steps_rollout_entropy():
    args = make_args("w_reinforce", N, lam=0.1)
    args.algo.advantage.lambda_controller = "entropy"
    args.algo.advantage.lambda_controller_target = 0.8
    maker = make_maker(args)
    reference = EntropyLambdaController(target=0.8, lam_max=0.1)
    for step, scale in enumerate([1.0, 1.0, 0.9, 0.7, 0.6, 0.6, 1.2], start=1):
        maker.nsr_step = step
        experiences = make_rollout(REWARDS, seed=step)
        for exp in experiences:
            exp.action_log_probs = exp.action_log_probs * scale
        entropy = diversity.token_entropy(
            [e.action_log_probs for e in experiences], [e.action_mask for e in experiences]
        )
        experiences = maker.compute_advantages_and_returns(experiences)
        lam = reference.update(entropy)
        assert maker.nsr_rollout_stats["rollout/lambda"] == pytest.approx(lam)
        assert correct_advantage(experiences) == pytest.approx(lam, abs=1e-6)
    assert 0 < lam <= 0.1


def test_eval_logs_gain_pass_at_k_between_openrlhfs_pass1_and_passn():
    from openrlhf.trainer import ppo_trainer, ppo_trainer_async
    from openrlhf.trainer.ppo_utils.experience import Experience

    assert ppo_trainer_async.compute_eval_metrics is ppo_trainer.compute_eval_metrics  # both trainers: patched
    n = 8
    correct = {"p1": 1, "p2": 3, "q1": 0}
    samples = []
    for prompt, c in correct.items():
        for j in range(n):
            samples.append(
                Experience(
                    prompts=[prompt], rewards=[float(j < c)], response_length=torch.tensor([5.0]), truncated=None
                )
            )
    loader = [(["math", "math"], ["p1", "p2"], ["l", "l"], [None, None]), (["aime"], ["q1"], ["l"], [None])]
    logs = ppo_trainer.compute_eval_metrics(loader, samples, n)
    for k in (2, 4):
        assert logs[f"eval_math_pass{k}"] == pytest.approx((pass_at_k(n, 1, k) + pass_at_k(n, 3, k)) / 2)
        assert logs[f"eval_aime_pass{k}"] == 0
    # OpenRLHF's own pass1 / pass8 are untouched and agree with the unbiased estimator
    assert logs["eval_math_pass1"] == pytest.approx(4 / 16) and logs["eval_math_pass8"] == 1.0
    assert "eval_math_pass16" not in logs and "eval_math_pass3" not in logs
