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
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rlenv.chat import Message
from rlenv.verdict import Verdict

__all__ = ["Trajectory", "TurnRecord", "read_trajectories", "write_trajectories"]


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
    policy: str = Field(default="", description="Which policy produced it.")
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def final_verdict(self) -> Verdict | None:
        return self.turns[-1].verdict if self.turns else None

    @property
    def scored(self) -> bool:
        """False when a verifier could not judge some turn (trainers leave it out)."""
        return all(turn.verdict.scored for turn in self.turns)

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
