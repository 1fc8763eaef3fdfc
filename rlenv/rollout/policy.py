"""Policies: a batch of conversations in, completions out.

Every backend (local transformers models, OpenAI-compatible endpoints, scripted answers for
tests) implements one small protocol, so the rollout engine, ``rlenv eval`` and the trainers
treat them alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from rlenv.chat import Message

__all__ = ["Completion", "Policy", "SamplingParams", "ScriptedPolicy"]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. Backends ignore what they cannot honour and say so in their docs."""

    max_new_tokens: int = 512
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None


@dataclass
class Completion:
    """One generated turn. Token ids and log-probs are set when the backend has them."""

    text: str
    message: dict[str, Any] | None = None
    """An assistant message with parsed ``tool_calls`` (OpenAI-style servers), else None."""
    prompt_token_ids: list[int] | None = None
    completion_token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    finish_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def action(self) -> str | dict[str, Any]:
        """What to pass to ``env.step``: the parsed message when there is one, else the text."""
        return self.message if self.message is not None else self.text


@runtime_checkable
class Policy(Protocol):
    """Generates the next assistant turn for each conversation of a batch."""

    name: str

    def generate(
        self,
        conversations: Sequence[Sequence[Message]],
        tools: Sequence[Sequence[dict[str, Any]]],
        params: SamplingParams,
    ) -> list[Completion]:
        """One completion per conversation, in order. ``tools[i]`` are conversation i's tools."""
        ...


class ScriptedPolicy:
    """A policy that answers from a function or a fixed list — for tests and docs.

    ``respond(conversation) -> str`` is called once per conversation; or give ``answers``, which
    are used in turn (cycling). ``calls`` counts the batched ``generate`` calls and ``batch_sizes``
    records their sizes, so tests can see how the engine batches.
    """

    def __init__(
        self,
        respond: Callable[[Sequence[Message]], str] | None = None,
        *,
        answers: Sequence[str] | None = None,
        name: str = "scripted",
    ) -> None:
        if (respond is None) == (answers is None):
            raise ValueError("give either respond= or answers=")
        self._respond = respond
        self._answers = list(answers or [])
        self._next = 0
        self.name = name
        self.calls = 0
        self.batch_sizes: list[int] = []

    def generate(
        self,
        conversations: Sequence[Sequence[Message]],
        tools: Sequence[Sequence[dict[str, Any]]],
        params: SamplingParams,
    ) -> list[Completion]:
        self.calls += 1
        self.batch_sizes.append(len(conversations))
        completions = []
        for conversation in conversations:
            if self._respond is not None:
                text = self._respond(conversation)
            else:
                text = self._answers[self._next % len(self._answers)]
                self._next += 1
            completions.append(Completion(text=text, finish_reason="stop"))
        return completions
