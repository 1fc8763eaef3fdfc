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
    """Generates the next assistant turn for each conversation of a batch.

    A policy has a ``name`` (recorded in every trajectory), ``supports_prefixes`` and
    :meth:`generate`. Subclass ``Policy`` to inherit ``supports_prefixes = False``; a class
    that does not subclass it declares the attribute itself.
    """

    name: str

    supports_prefixes: bool = False
    """Whether :meth:`generate` also takes ``prefixes=``, and continues from exact token ids.

    When True, the rollout engine calls ``generate(conversations, tools, params,
    prefixes=prefixes)``. ``prefixes[i]`` is ``None`` for a conversation's first turn, and
    otherwise the exact ids of conversation ``i`` so far: its last prompt's ids followed by
    the ids generated for its last assistant turn (``Completion.prompt_token_ids +
    Completion.completion_token_ids``). The policy must build the next prompt by *extending*
    those ids with only the tokens of the messages added since, never by re-tokenising the
    transcript, so that a multi-turn episode is one token sequence
    (:meth:`~rlenv.rollout.Trajectory.token_sequence`) and a trainer learns on the tokens the
    model really produced. ``TransformersPolicy`` does this; a policy that only sees text (an
    OpenAI-compatible endpoint, a script) leaves it False and is never passed ``prefixes``.
    """

    def generate(
        self,
        conversations: Sequence[Sequence[Message]],
        tools: Sequence[Sequence[dict[str, Any]]],
        params: SamplingParams,
    ) -> list[Completion]:
        """One completion per conversation, in order. ``tools[i]`` are conversation i's tools.
        (With ``supports_prefixes``, also the keyword ``prefixes``, see above.)"""
        ...


class ScriptedPolicy(Policy):
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
