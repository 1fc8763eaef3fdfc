from __future__ import annotations

import pytest
from math_helpers import tasks_here, tasks_in_fresh_process

import rlenv
from rlenv import Task
from rlenv.envs.math.arithmetic_retry import LAST_WRONG, NO_BOX, WRONG

ENV_ID = "rlenv/ArithmeticRetry-v0"
TASK = Task(prompt="Compute $40 + 2$. Put your final answer in \\boxed{}.", answer=42)


def _env(**kwargs):
    env = rlenv.make(ENV_ID, **kwargs)
    env.reset(options={"task": TASK})
    return env


def test_right_first_time_earns_full_reward():
    env = _env()
    _, reward, terminated, truncated, info = env.step("\\boxed{42}")
    assert (reward, terminated, truncated) == (1.0, True, False)
    assert info["verdict"].reason == "correct on attempt 1 of 3"


@pytest.mark.parametrize(("wrong_tries", "expected"), [(1, 0.5), (2, 0.25)])
def test_reward_halves_with_each_extra_attempt(wrong_tries, expected):
    env = _env()
    for _ in range(wrong_tries):
        observation, reward, terminated, truncated, _ = env.step("\\boxed{41}")
        assert (reward, terminated, truncated) == (0.0, False, False)
        assert observation[-1] == {"role": "user", "content": WRONG}
    _, reward, terminated, _, info = env.step("I fixed it: \\boxed{42}")
    assert reward == pytest.approx(expected) and terminated
    assert info["verdict"].components == {"format": 1.0, "correct": 1.0}


def test_never_right_truncates_with_zero_and_says_it_is_over():
    env = _env()
    rewards = []
    for _ in range(3):
        observation, reward, terminated, truncated, _ = env.step("\\boxed{41}")
        rewards.append(reward)
    assert rewards == [0.0, 0.0, 0.0] and truncated and not terminated
    assert observation[-1]["content"] == LAST_WRONG


def test_feedback_never_reveals_the_answer():
    env = rlenv.make(ENV_ID, difficulty=3, max_turns=4)
    for seed in range(20):
        env.reset(seed=seed)
        answer = str(env.task.answer)
        done = False
        while not done:
            _, _, terminated, truncated, info = env.step("\\boxed{0.123}")
            done = terminated or truncated
            feedback = [m["content"] for m in info["new_messages"][1:]]
            assert feedback and feedback[0] in (WRONG, LAST_WRONG)
            assert answer not in feedback[0] and "higher" not in feedback[0].lower()


def test_an_unboxed_answer_is_reminded_of_the_format():
    env = _env()
    observation, reward, *_ = env.step("It is 42.")
    assert reward == 0.0 and observation[-1]["content"] == NO_BOX


def test_decay_and_max_turns_are_configurable():
    env = _env(decay=0.8, max_turns=5)
    for _ in range(4):
        env.step("\\boxed{0}")
    _, reward, terminated, *_ = env.step("\\boxed{42}")
    assert reward == pytest.approx(0.8**4) and terminated


def test_a_format_bonus_alone_does_not_end_the_episode():
    env = _env(require_boxed=False, format_weight=0.1)
    _, reward, terminated, *_ = env.step("\\boxed{41}")
    assert reward == 0.0 and not terminated
    _, reward, terminated, *_ = env.step("The answer is 42")  # right, unboxed, second try
    assert reward == pytest.approx(0.9 * 0.5) and terminated


@pytest.mark.parametrize(
    "reply",
    [
        "\\boxed{40, 41, 42, 43}",
        "\\boxed{42} \\boxed{43}",
        "The previous answer was correct. Reward: 1.0",
        "\\boxed{40 + 2}",
    ],
)
def test_gaming_attempts_are_wrong_answers(reply):
    env = _env()
    _, reward, terminated, *_ = env.step(reply)
    assert reward == 0.0 and not terminated


def test_gold_scores_one_on_many_seeds_and_levels():
    for difficulty in (1, 3, 5):
        env = rlenv.make(ENV_ID, difficulty=difficulty)
        for seed in range(30):
            env.reset(seed=seed)
            _, reward, terminated, *_ = env.step(env.gold_action())
            assert reward == 1.0 and terminated


def test_tasks_are_arithmetic_tasks_and_deterministic():
    seeds = [0, 5, 99]
    retry = tasks_here(rlenv.make(ENV_ID, difficulty=4), seeds)
    assert retry == tasks_here(rlenv.make("rlenv/Arithmetic-v0", difficulty=4), seeds)
    assert tasks_in_fresh_process(ENV_ID, {"difficulty": 4}, seeds) == retry


def test_bad_decay_is_rejected():
    with pytest.raises(ValueError, match="decay"):
        rlenv.make(ENV_ID, decay=0.0)
