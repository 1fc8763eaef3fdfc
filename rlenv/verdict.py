"""``Verdict``: why a step earned its reward.

Every ``env.step`` returns one in ``info["verdict"]``. Trainers read ``reward`` and ``scored``;
people read ``reason`` and ``error``; verifiers fill ``parsed`` and ``components``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Verdict", "as_verdict"]


class Verdict(BaseModel):
    """The outcome of scoring one model turn."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reward: float = Field(description="The reward for this turn.")
    reason: str = Field(default="", description="Human-readable explanation of the reward.")
    parsed: Any = Field(
        default=None, description="What the verifier read from the output (an answer, calls...)."
    )
    components: dict[str, float] = Field(
        default_factory=dict, description="Named parts of a composite reward."
    )
    error: str | None = Field(
        default=None,
        description="What was wrong with the model output (malformed, too long...); "
        "the reward stands, usually 0.",
    )
    parse_errors: int = Field(
        default=0,
        ge=0,
        description="Tool calls of this turn the parser could not read (malformed, cut off, "
        "unknown tool). A turn whose only calls were malformed also has an ``error`` starting "
        "``parse error:`` (its stop reason when the episode ends there). Trainers' "
        "``parse_error`` setting decides what such episodes do to the loss.",
    )
    scored: bool = Field(
        default=True,
        description="False when the verifier could not judge the output (it crashed, or its "
        "infrastructure failed). The reward is then not a judgement: trainers exclude such "
        "samples from group baselines instead of counting a 0.",
    )

    @property
    def passed(self) -> bool:
        """Whether the output was scored and earned a positive reward."""
        return self.scored and self.reward > 0


def as_verdict(value: Verdict | float | int | bool) -> Verdict:
    """Coerce what a verifier returned (a ``Verdict``, a number or a bool) into a ``Verdict``.

    Raises ``TypeError`` for other types and ``ValueError`` for a non-finite reward.
    """
    if isinstance(value, Verdict):
        verdict = value
    elif isinstance(value, bool):
        verdict = Verdict(reward=1.0 if value else 0.0)
    elif isinstance(value, numbers.Real):
        verdict = Verdict(reward=float(value))
    else:
        raise TypeError(
            f"a verifier must return a Verdict, a float or a bool, not {type(value).__name__}"
        )
    if not math.isfinite(verdict.reward):
        raise ValueError(f"a verifier returned a non-finite reward: {verdict.reward}")
    return verdict
