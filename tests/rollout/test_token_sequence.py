"""Trajectory.token_sequence: the mask of model-generated tokens, and refusals."""

from __future__ import annotations

import pytest

from rlenv.rollout import NotTokenFaithful, Trajectory, TurnRecord
from rlenv.verdict import Verdict


def _trajectory(*turns: tuple[list[int] | None, list[int] | None]) -> Trajectory:
    records = [
        TurnRecord(
            reward=0.0,
            verdict=Verdict(reward=0.0),
            completion="",
            prompt_token_ids=prompt,
            completion_token_ids=generated,
            completion_logprobs=None if generated is None else [-0.5] * len(generated),
        )
        for prompt, generated in turns
    ]
    return Trajectory(
        env_id="x/Y-v0", task_id="t", seed=0, messages=[], turns=records, reward=0.0,
        terminated=True, truncated=False,
    )  # fmt: skip


def test_two_turns_make_one_sequence():
    sequence = _trajectory(([1, 2, 3], [4, 5]), ([1, 2, 3, 4, 5, 6, 7], [8])).token_sequence()
    assert sequence.token_ids == [1, 2, 3, 4, 5, 6, 7, 8]
    assert sequence.mask == [0, 0, 0, 1, 1, 0, 0, 1]
    assert sequence.logprobs == [0, 0, 0, -0.5, -0.5, 0, 0, -0.5]
    assert sequence.prompt_length == 3


def test_a_prompt_that_does_not_extend_the_previous_turn_is_refused():
    with pytest.raises(NotTokenFaithful, match="does not extend"):
        _trajectory(([1, 2, 3], [4, 5]), ([1, 2, 3, 9, 5, 6], [8])).token_sequence()


def test_missing_token_ids_are_refused():
    with pytest.raises(NotTokenFaithful, match="no token ids"):
        _trajectory((None, None)).token_sequence()
    with pytest.raises(NotTokenFaithful, match="no turns"):
        _trajectory().token_sequence()
