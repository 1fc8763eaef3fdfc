"""The rollout engine: batching, groups, ordering, concurrency, records."""

from __future__ import annotations

import re
import threading
import time
from typing import ClassVar

import pytest
from sample_envs import EchoWord

import rlenv
from rlenv import Verdict
from rlenv.pool import EnvPool
from rlenv.rollout import (
    Completion,
    Policy,
    ScriptedPolicy,
    Trajectory,
    episodes,
    read_trajectories,
    rollout,
    write_trajectories,
)


def binary_search(conversation) -> str:
    """Guess by binary search from the conversation alone."""
    low, high = 1, 100
    guesses = [m["content"] for m in conversation if m["role"] == "assistant"]
    hints = [m["content"] for m in conversation if m["role"] == "user"][1:]
    for guess, hint in zip(guesses, hints, strict=False):
        if hint.startswith("Higher"):
            low = int(guess) + 1
        elif hint.startswith("Lower"):
            high = int(guess) - 1
    return str((low + high) // 2)


def test_multi_turn_episodes_finish_at_different_times_and_the_batch_keeps_filling():
    policy = ScriptedPolicy(binary_search)
    specs = episodes("rlenv/GuessNumber-v0", n_tasks=12)
    trajectories = rollout(policy, specs, max_batch_size=4)
    assert [t.seed for t in trajectories] == [s.seed for s in specs]
    assert all(t.reward == 1.0 and t.terminated for t in trajectories)
    turns = [len(t.turns) for t in trajectories]
    assert len(set(turns)) > 1  # episodes really ended at different times
    assert max(policy.batch_sizes) == 4
    assert sum(policy.batch_sizes) == sum(turns)  # every turn was generated exactly once
    assert policy.calls < sum(turns)  # ...in batches


def test_group_samples_share_their_task():
    def answer(conversation):
        numbers = re.findall(r"-?\d+", conversation[-1]["content"])
        a, op, b = int(numbers[0]), conversation[-1]["content"].split()[2], int(numbers[1])
        value = {"+": a + b, "-": a - b, "\\times": a * b, "×": a * b, "*": a * b}.get(op)
        return f"\\boxed{{{value}}}"

    specs = episodes("rlenv/Arithmetic-v0", n_tasks=3, group_size=4, seed=10)
    trajectories = rollout(ScriptedPolicy(answer), specs)
    assert len(trajectories) == 12
    for task in range(3):
        group = trajectories[task * 4 : (task + 1) * 4]
        assert len({t.task_id for t in group}) == 1 and [t.group for t in group] == [0, 1, 2, 3]
    assert len({t.task_id for t in trajectories}) == 3


def test_trajectories_record_the_episode_and_round_trip_through_jsonl(tmp_path):
    trajectories = rollout(
        ScriptedPolicy(answers=["wrong"]), episodes("rlenv/GuessNumber-v0", n_tasks=2)
    )
    first = trajectories[0]
    assert first.env_id == "rlenv/GuessNumber-v0" and first.truncated and not first.terminated
    assert len(first.turns) == 10 and first.reward == 0.0 and first.policy == "scripted"
    assert first.messages[0]["role"] == "user" and len(first.messages) == 1 + 2 * 10
    assert isinstance(first.final_verdict, Verdict) and first.scored
    path = tmp_path / "trajectories.jsonl"
    assert write_trajectories(trajectories, path) == 2
    assert list(read_trajectories(path)) == trajectories
    path.write_text('{"not": "a trajectory"}\n')
    with pytest.raises(ValueError, match=r"trajectories\.jsonl:1"):
        list(read_trajectories(path))


def test_task_ids_select_tasks():
    env = rlenv.make("rlenv/Arithmetic-v0")
    ids = [env.reset(seed=s)[1]["task_id"] for s in (3, 4)]
    trajectories = rollout(
        ScriptedPolicy(answers=["\\boxed{0}"]),
        episodes("rlenv/Arithmetic-v0", n_tasks=2, task_ids=ids),
    )
    assert [t.task_id for t in trajectories] == ids


class _SlowEcho(EchoWord):
    threads: ClassVar[set[int]] = set()

    def verify(self, task, completion):
        type(self).threads.add(threading.get_ident())
        time.sleep(0.05)
        return completion.strip() == task.answer


def test_environment_steps_of_a_round_run_concurrently():
    rlenv.register("rlenvtest/SlowEcho-v0", _SlowEcho)
    try:
        _SlowEcho.threads = set()
        rollout(
            ScriptedPolicy(answers=["x"]),
            episodes("rlenvtest/SlowEcho-v0", n_tasks=8),
            env_workers=4,
        )
        assert len(_SlowEcho.threads) > 1
    finally:
        rlenv.unregister("rlenvtest/SlowEcho-v0")


def test_a_policy_that_returns_the_wrong_number_of_completions_is_an_error():
    class Broken(ScriptedPolicy):
        def generate(self, conversations, tools, params):
            return super().generate(conversations, tools, params)[:-1]

    with pytest.raises(RuntimeError, match="returned 1 completions for 2"):
        rollout(Broken(answers=["x"]), episodes("rlenv/Arithmetic-v0", n_tasks=2))


def test_progress_callback_sees_every_episode():
    seen: list[Trajectory] = []
    rollout(
        ScriptedPolicy(answers=["1"]),
        episodes("rlenv/Arithmetic-v0", n_tasks=5),
        on_episode=seen.append,
    )
    assert len(seen) == 5


def test_bad_arguments():
    with pytest.raises(ValueError):
        episodes("rlenv/Arithmetic-v0", n_tasks=0)
    with pytest.raises(ValueError):
        ScriptedPolicy()
    with pytest.raises(ValueError):
        rollout(ScriptedPolicy(answers=["1"]), [], max_batch_size=0)


class _TokenPolicy(Policy):
    """Declares ``supports_prefixes``: records the prefixes it is given; its 'tokens' are the
    number of messages it saw (prompt) and 7 (completion)."""

    name = "tokens"
    supports_prefixes = True

    def __init__(self) -> None:
        self.seen: list[list] = []

    def generate(self, conversations, tools, params, prefixes=None):
        self.seen.append(list(prefixes))
        return [
            Completion(text="wrong", prompt_token_ids=[len(c)], completion_token_ids=[7])
            for c in conversations
        ]


def test_prefixes_go_to_a_policy_that_declares_supports_prefixes_and_only_to_it():
    assert Policy.supports_prefixes is False and ScriptedPolicy.supports_prefixes is False
    policy = _TokenPolicy()
    (trajectory,) = rollout(policy, episodes("rlenvtest/Countdown-v0", n_tasks=1))
    turns = len(trajectory.turns)
    assert turns == 6  # wrong every time, until max_turns
    # first turn: nothing yet; then the exact ids of the last prompt + completion
    assert policy.seen == [[None]] + [[[1 + 2 * turn, 7]] for turn in range(turns - 1)]
    # ScriptedPolicy's generate takes no prefixes: it would raise if the engine passed them
    rollout(ScriptedPolicy(answers=["wrong"]), episodes("rlenvtest/Countdown-v0", n_tasks=1))


def test_a_policy_that_does_not_declare_supports_prefixes_is_told_how_to():
    class Undeclared:
        name = "undeclared"

        def generate(self, conversations, tools, params):
            return [Completion(text="1") for _ in conversations]

    with pytest.raises(
        TypeError, match=r"lacks supports_prefixes.*subclass rlenv\.rollout\.Policy"
    ):
        rollout(Undeclared(), episodes("rlenv/Arithmetic-v0", n_tasks=1))


def test_a_pool_passed_in_is_reused_and_left_open():
    with EnvPool() as pool:
        first = rollout(ScriptedPolicy(answers=["1"]), episodes("rlenv/Arithmetic-v0", n_tasks=3),
                        pool=pool)  # fmt: skip
        assert pool.idle == 3 and pool.lent == 0
        rollout(ScriptedPolicy(answers=["1"]), episodes("rlenv/Arithmetic-v0", n_tasks=2),
                pool=pool)  # fmt: skip
        assert pool.idle == 3  # the same envs served the second call
    assert len(first) == 3
