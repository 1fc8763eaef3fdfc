"""``Trajectory``: one episode, as a record that serialises to one JSON line.

It holds what a trainer and an evaluation report need: the env id, task id and seed; the
whole conversation; per-turn rewards and verdicts; the final reward; and — when a local model
produced it — the exact token ids of each model turn and the mask of which tokens the model
generated, so a trainer never re-tokenises a multi-turn transcript.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rlenv.chat import Message
from rlenv.verdict import Verdict

__all__ = [
    "NotTokenFaithful",
    "TokenSequence",
    "Trajectory",
    "TurnRecord",
    "read_trajectories",
    "write_trajectories",
]


StopReason = Literal["terminated", "truncated", "max_episode_tokens", "reset_failed"]
"""Why an episode ended (:attr:`Trajectory.stop_reason`)."""


class NotTokenFaithful(ValueError):
    """The trajectory's turns do not form one token sequence (no ids, or a prompt that does not
    extend the previous turn's ids)."""


class TokenSequence(BaseModel):
    """A whole episode as the model saw it: one id sequence and, per token, whether the model
    generated it (``mask`` 1) or the prompt/environment put it there (0). ``logprobs`` holds the
    sampling log-probability of generated tokens and 0.0 elsewhere."""

    model_config = ConfigDict(extra="forbid")

    token_ids: list[int]
    mask: list[int]
    logprobs: list[float]
    prompt_length: int = Field(description="Tokens before the model's first generated token.")


class TurnRecord(BaseModel):
    """One model turn and what the environment made of it."""

    model_config = ConfigDict(extra="forbid")

    reward: float
    verdict: Verdict
    completion: str = Field(description="The model's raw text for this turn.")
    prompt_token_ids: list[int] | None = Field(
        default=None, description="The exact token ids the model was fed for this turn."
    )
    completion_token_ids: list[int] | None = Field(
        default=None, description="The exact token ids the model generated."
    )
    completion_logprobs: list[float] | None = None
    finish_reason: str | None = Field(default=None, description="'stop', 'length', ...")


class Trajectory(BaseModel):
    """One episode of one environment."""

    model_config = ConfigDict(extra="forbid")

    env_id: str
    task_id: str | None
    seed: int | None
    group: int = Field(default=0, description="Which of the task's group_size samples this is.")
    messages: list[Message] = Field(description="The whole conversation, opening included.")
    tools: list[dict[str, Any]] = Field(default_factory=list)
    turns: list[TurnRecord] = Field(default_factory=list)
    reward: float = Field(description="The episode's total reward.")
    terminated: bool
    truncated: bool
    stop_reason: StopReason | None = Field(
        default=None,
        description="Why the episode ended: 'terminated' (the environment ended it), "
        "'truncated' (the environment's own limit, such as max_turns) or "
        "'max_episode_tokens' (the rollout's token budget for the episode ran out; truncated "
        "is then True) or 'reset_failed' (a served environment's server was lost, busy or "
        "unreachable when the episode should start: no turns, unscored, truncated; ``error`` "
        "says why). None in records that do not say.",
    )
    error: str | None = Field(
        default=None,
        description="Why the episode could not be played (stop_reason 'reset_failed').",
    )
    policy: str = Field(default="", description="Which policy produced it.")
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def final_verdict(self) -> Verdict | None:
        return self.turns[-1].verdict if self.turns else None

    @property
    def hit_token_limit(self) -> bool:
        """True when a token limit cut the model off: a turn stopped at ``max_new_tokens``
        (``finish_reason == "length"``) or the episode ran out of ``max_episode_tokens``.
        These are the episodes a trainer's overlong filtering leaves out, or penalises."""
        return self.stop_reason == "max_episode_tokens" or any(
            turn.finish_reason == "length" for turn in self.turns
        )

    @property
    def scored(self) -> bool:
        """False when a verifier could not judge some turn, or the episode could not start
        (``stop_reason == "reset_failed"``): trainers leave it out, never count it as 0."""
        if self.stop_reason == "reset_failed":
            return False
        return all(turn.verdict.scored for turn in self.turns)

    def token_sequence(self) -> TokenSequence:
        """The episode as one token sequence with the mask of model-generated tokens.

        Each turn's prompt must start with the previous turn's prompt + generated ids, which the
        rollout engine guarantees for policies with ``Policy.supports_prefixes`` (token-faithful
        multi-turn). Raises :class:`NotTokenFaithful` otherwise, rather than guessing.
        """
        ids: list[int] = []
        mask: list[int] = []
        logprobs: list[float] = []
        prompt_length = 0
        for number, turn in enumerate(self.turns):
            prompt, generated = turn.prompt_token_ids, turn.completion_token_ids
            if prompt is None or generated is None:
                raise NotTokenFaithful(f"turn {number} has no token ids")
            if prompt[: len(ids)] != ids:
                raise NotTokenFaithful(
                    f"turn {number}'s prompt does not extend the ids of the turns before it"
                )
            inserted = prompt[len(ids) :]
            if number == 0:
                prompt_length = len(inserted)
            ids += inserted + generated
            mask += [0] * len(inserted) + [1] * len(generated)
            scores = turn.completion_logprobs or [0.0] * len(generated)
            if len(scores) != len(generated):
                raise NotTokenFaithful(
                    f"turn {number} has {len(scores)} log-probs for {len(generated)} tokens"
                )
            logprobs += [0.0] * len(inserted) + list(scores)
        if not self.turns:
            raise NotTokenFaithful("the trajectory has no turns")
        return TokenSequence(
            token_ids=ids, mask=mask, logprobs=logprobs, prompt_length=prompt_length
        )

    def to_json(self) -> str:
        return self.model_dump_json()


def write_trajectories(trajectories: Iterable[Trajectory], path: str | Path) -> int:
    """Write JSONL; returns how many were written."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as handle:
        for trajectory in trajectories:
            handle.write(trajectory.to_json() + "\n")
            count += 1
    return count


def read_trajectories(path: str | Path) -> Iterator[Trajectory]:
    """Read JSONL written by :func:`write_trajectories`; errors name the line."""
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    yield Trajectory.model_validate(json.loads(line))
                except (json.JSONDecodeError, ValueError) as error:
                    raise ValueError(f"{path}:{number}: not a trajectory: {error}") from None
