"""``Retry``: a right answer on attempt k earns decay ** (k - 1) of its reward; wrong ones earn 0."""

from __future__ import annotations

import math

import pytest

import rlenv
from rlenv import GeneratedTasks, Task, TextEnv, Turn, Verdict
from rlenv.chat import message_text
from rlenv.retry import Retry


@pytest.mark.parametrize(
    ("decay", "attempt", "factor"),
    [(0.5, 1, 1.0), (0.5, 2, 0.5), (0.5, 3, 0.25), (0.8, 3, 0.64), (1.0, 7, 1.0), (0.1, 4, 0.001)],
)
def test_factor_is_decay_to_the_number_of_extra_attempts(decay, attempt, factor):
    assert Retry(decay).factor(attempt) == pytest.approx(factor)


def test_a_solved_attempt_ends_with_its_reward_decayed():
    verdict = Verdict(reward=0.9, parsed="42", components={"format": 1.0, "correct": 1.0})
    turn = Retry(0.5).turn(verdict, attempt=2, solved=True, feedback="unused")
    assert isinstance(turn, Turn) and turn.done and turn.messages == []
    assert turn.verdict.reward == pytest.approx(0.45)  # 0.9 * 0.5 ** (2 - 1)
    assert turn.verdict.reason == "solved on attempt 2"
    assert turn.verdict.parsed == "42" and turn.verdict.components == verdict.components
    reason = Retry().turn(verdict, attempt=3, solved=True, feedback="", reason="right").verdict
    assert (reason.reward, reason.reason) == (pytest.approx(0.225), "right")  # 0.9 * 0.25


def test_a_wrong_attempt_earns_nothing_and_gets_the_feedback():
    verdict = Verdict(reward=0.1, parsed="41", reason="wrong", components={"format": 1.0})
    turn = Retry(0.5).turn(verdict, attempt=1, solved=False, feedback="Try again.")
    assert not turn.done and turn.reward is None
    assert turn.messages == [{"role": "user", "content": "Try again."}]
    assert turn.verdict.reward == 0.0  # the format bonus does not pay until the answer is right
    assert (turn.verdict.parsed, turn.verdict.reason) == ("41", "wrong")


@pytest.mark.parametrize("decay", [0.0, -0.5, 1.5, math.nan])
def test_decay_outside_zero_to_one_is_refused(decay):
    with pytest.raises(ValueError, match="decay must be in"):
        Retry(decay)


def test_attempts_count_from_one():
    with pytest.raises(ValueError, match="from 1"):
        Retry().factor(0)


class _Guess(TextEnv):
    """Say the secret word; three attempts, each extra one costs a third of the reward."""

    max_turns = 3

    def __init__(self, **kwargs) -> None:
        self.retry = Retry(decay=2 / 3)
        super().__init__(**kwargs)

    def load_tasks(self) -> GeneratedTasks:
        return GeneratedTasks(lambda rng: Task(prompt="The secret word?", answer="pear"))

    def respond(self, message) -> Turn:
        said = message_text(message).strip()
        verdict = Verdict(reward=1.0 if said == self.task.answer else 0.0, parsed=said)
        return self.retry.turn(
            verdict, attempt=self.turn, solved=verdict.reward == 1.0, feedback="No."
        )


@pytest.mark.parametrize(
    ("attempts", "rewards"),
    [
        (["pear"], [1.0]),
        (["apple", "pear"], [0.0, 2 / 3]),
        (["apple", "plum", "pear"], [0.0, 0.0, 4 / 9]),
    ],
)
def test_an_episode_pays_once_decayed_by_the_attempts_it_took(attempts, rewards):
    env = _Guess()
    env.reset(seed=0)
    got = []
    for attempt in attempts:
        observation, reward, terminated, truncated, _ = env.step(attempt)
        got.append(reward)
    assert got == pytest.approx(rewards) and terminated and not truncated


def test_three_wrong_attempts_are_truncated_with_zero():
    env = _Guess()
    env.reset(seed=0)
    for _ in range(3):
        observation, reward, terminated, truncated, _ = env.step("apple")
    assert (reward, terminated, truncated) == (0.0, False, True)
    assert observation[-1] == {"role": "user", "content": "No."}


@pytest.mark.parametrize("env_id", ["rlenv/ArithmeticRetry-v0", "rlenv/PythonBasicsFeedback-v0"])
def test_the_bundled_retry_envs_share_the_rule(env_id):
    env = rlenv.make(env_id, decay=0.8).unwrapped
    assert env.retry == Retry(0.8)
    with pytest.raises(ValueError, match="decay must be in"):
        rlenv.make(env_id, decay=0.0)
