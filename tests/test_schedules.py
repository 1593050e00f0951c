"""Lambda schedules and the entropy-driven lambda controller (openrlhf_nsr/schedules.py)."""

import math

import pytest

from openrlhf_nsr.schedules import ERROR_CLIP, EntropyLambdaController, Schedule


def test_a_number_is_a_constant_schedule():
    schedule = Schedule.parse("0.1")
    assert schedule.constant and [schedule(s) for s in (0, 1, 500)] == [0.1, 0.1, 0.1]
    assert schedule.canonical() == 0.1 and Schedule.parse(0.25).canonical() == 0.25


def test_piecewise_linear_between_points_and_constant_outside():
    schedule = Schedule.parse("10:0, 40:0.1, 50:0.3")
    assert schedule(0) == 0 and schedule(10) == 0  # constant before the first point
    assert schedule(25) == pytest.approx(0.05) and schedule(40) == pytest.approx(0.1)
    assert schedule(45) == pytest.approx(0.2) and schedule(50) == pytest.approx(0.3)
    assert schedule(51) == 0.3 and schedule(10**6) == 0.3  # and after the last
    assert schedule.canonical() == "10:0,40:0.1,50:0.3" and schedule.max == 0.3


def test_nsr_first_then_psr_in():
    schedule = Schedule.parse("0:0,40:0.1")
    assert [round(schedule(s), 6) for s in (1, 20, 40, 100)] == [0.0025, 0.05, 0.1, 0.1]
    assert "0 at step 0 -> 0.1 at step 40" in schedule.describe()


def test_a_number_too_large_for_a_float_is_a_value_error():
    with pytest.raises(ValueError, match="finite"):
        Schedule.parse(10**400)


def test_the_canonical_form_round_trips_exactly():
    schedule = Schedule.parse("0:0.123456789012345,7:1e-07")
    assert Schedule.parse(schedule.canonical()) == schedule


@pytest.mark.parametrize(
    "spec,message",
    [
        ("", "expected a number"),
        ("abc", "'abc' is not a number"),
        ("-0.1", "must be finite and >= 0"),
        ("nan", "finite"),
        ("0:0,40", "'40' is not STEP:VALUE"),
        ("0:0,40:x", "'40:x': value 'x' is not a number"),
        ("0:0,x:1", "'x:1': step 'x' is not an integer"),
        ("0:0,2.5:1", "is not an integer"),
        ("-1:0", "step must be >= 0"),
        ("5:0,5:1", "'5:1': steps must be strictly increasing"),
        ("5:0,3:1", "strictly increasing (previous step 5)"),
        ("0:0,9:-1", "'9:-1': value '-1' must be finite and >= 0"),
        ("0:0,9:inf", "finite"),
        ("0:1:2", "is not STEP:VALUE"),
    ],
)
def test_malformed_schedules_name_the_bad_part(spec, message):
    with pytest.raises(ValueError) as err:
        Schedule.parse(spec)
    assert message in str(err.value)


def run(controller, entropies):
    return [controller.update(h) for h in entropies]


def test_controller_raises_lambda_while_entropy_is_above_target_up_to_the_bound():
    controller = EntropyLambdaController(target=0.5, lam_max=0.1)
    # entropy stays at its first value, twice the target: the error is clipped to +0.2 per step
    assert run(controller, [2.0] * 7) == pytest.approx([0.02, 0.04, 0.06, 0.08, 0.1, 0.1, 0.1])


def test_controller_lowers_lambda_toward_nsr_when_entropy_falls_below_target():
    controller = EntropyLambdaController(target=0.9, lam_max=0.1, init=0.1)
    lams = run(controller, [1.0, 0.9, 0.81, 0.72, 0.5, 0.5, 0.5, 0.5])
    # step 1: 1.0 / 0.9 - 1 = +0.11 (already at the bound); 0.9 = target: no change; 0.81: -0.1;
    # 0.72: -0.2; then clipped at -0.2 each step until 0 (pure NSR)
    assert lams == pytest.approx([0.1, 0.1, 0.09, 0.07, 0.05, 0.03, 0.01, 0.0])
    assert run(controller, [0.1]) == [0.0]  # never below 0


def test_controller_is_proportional_inside_the_clip_band():
    controller = EntropyLambdaController(target=1.0, lam_max=0.2, init=0.1, rate=0.5)
    assert run(controller, [2.0, 2.1, 1.9]) == pytest.approx([0.1, 0.1 + 0.5 * 0.2 * 0.05, 0.1 + 0.5 * 0.2 * 0.0])


def test_controller_is_a_pure_function_of_the_entropy_sequence():
    entropies = [1.3, 1.1, 0.95, 1.2, 0.7, 0.71, 1.4, 0.2, 0.9]
    first = run(EntropyLambdaController(target=0.8, lam_max=0.1), entropies)
    second = run(EntropyLambdaController(target=0.8, lam_max=0.1), entropies)
    assert first == second and all(0 <= lam <= 0.1 for lam in first)
    # and a reference taken from the first step only
    controller = EntropyLambdaController(target=0.8, lam_max=0.1)
    run(controller, entropies)
    assert controller.reference == 1.3


def test_controller_with_target_one_holds_lambda_while_entropy_holds():
    assert run(EntropyLambdaController(target=1.0, lam_max=0.1, init=0.04), [0.8] * 5) == [0.04] * 5


def test_controller_on_a_deterministic_first_batch_falls_to_nsr():
    assert run(EntropyLambdaController(target=0.9, lam_max=0.1, init=0.1), [0.0, 0.0]) == pytest.approx([0.08, 0.06])
    assert ERROR_CLIP == 0.2  # AdaptiveKLController's clip


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"target": 0}, "(0, 1]"),
        ({"target": 1.2}, "(0, 1]"),
        ({"target": 0.9, "lam_max": -1}, "upper bound"),
        ({"target": 0.9, "lam_max": math.inf}, "upper bound"),
        ({"target": 0.9, "init": 0.2}, "start value"),
        ({"target": 0.9, "rate": 0}, "rate"),
    ],
)
def test_controller_settings_are_checked(kwargs, message):
    kwargs.setdefault("lam_max", 0.1)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("]", r"\]")):
        EntropyLambdaController(**kwargs)


@pytest.mark.parametrize("entropy", [math.nan, -0.1, math.inf])
def test_controller_refuses_a_broken_entropy_instead_of_moving_lambda(entropy):
    with pytest.raises(ValueError, match="entropy"):
        EntropyLambdaController(target=0.9, lam_max=0.1).update(entropy)
