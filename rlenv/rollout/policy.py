"""Policies: a batch of conversations in, completions out.

Every backend (local transformers models, OpenAI-compatible endpoints, scripted answers for
tests) implements one small protocol, so the rollout engine, ``rlenv eval`` and the trainers
treat them alike.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from rlenv.chat import Message

__all__ = [
    "Completion",
    "Policy",
    "SamplingParams",
    "ScriptedPolicy",
    "as_text_function",
    "call_seed",
    "episode_seed",
    "row_seed",
]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. Backends ignore what they cannot honour and say so in their docs."""

    max_new_tokens: int = 512
    """The most tokens of one model turn."""
    temperature: float = 1.0
    top_p: float = 1.0
    """Sample from the smallest set of tokens whose probability reaches ``top_p`` (the
    nucleus). The log-probs a backend records stay those of the *full* distribution at the
    temperature, which is what a trainer recomputes — so sampling with ``top_p < 1`` is
    off-policy for a trainer, and the bundled GRPO trainer refuses it (evaluation may use it)."""
    seed: int | None = None
    """Seeds one ``generate`` call: the same seed and inputs give the same completions. The
    rollout engine (:func:`~rlenv.rollout.rollout`) gives each of its calls its own seed,
    derived from this one and the call's number (:func:`call_seed`), so the turns of an episode
    and the waves of a rollout never share their sampling noise, while the same seed reproduces
    the whole rollout. None: fresh noise from torch's global generator."""
    max_episode_tokens: int | None = None
    """The most tokens the model may generate over a whole episode, all its turns together
    (``max_new_tokens`` limits one turn). The rollout engine gives each turn
    ``min(max_new_tokens, what the episode has left)`` and truncates the episode when nothing
    is left (``Trajectory.stop_reason == "max_episode_tokens"``). None: no episode budget."""
    seeds: tuple[int, ...] | None = None
    """One seed per conversation of a ``generate`` call, for backends that seed each
    conversation on its own: :class:`~rlenv.rollout.OpenAIPolicy` sends one request per
    conversation, each with its own ``seed`` field, and a server such as vLLM gives identical
    requests with equal seeds identical samples. The rollout engine sets it, when ``seed`` is
    set: turn ``t`` of episode ``i`` (the ``i``-th of its specs: task ``i // group_size``,
    sample ``i % group_size`` for :func:`~rlenv.rollout.episodes`) gets
    :func:`episode_seed` ``(seed, i, t)``, so the samples of a group never share a seed and an
    episode samples the same whatever else shares its batch. None: such a backend seeds
    conversation ``i`` of the call with :func:`row_seed` ``(seed, i)``. Backends that draw a
    whole batch from one generator (``TransformersPolicy``) use ``seed`` and ignore this."""


def call_seed(seed: int | None, call: int) -> int | None:
    """The seed of call number ``call`` (0-based) of a run seeded with ``seed``.

    Call 0 uses ``seed`` itself (a one-call rollout samples as ``generate`` with ``seed``
    does); later calls a 31-bit hash of ``(seed, call)`` (31 bits: what every server's seed
    field accepts), so no two calls of a run share their noise. None stays None."""
    if seed is None or call == 0:
        return seed
    return _hashed(f"{seed}:{call}")


def row_seed(seed: int | None, row: int) -> int | None:
    """The seed of conversation ``row`` (0-based) of a ``generate`` call seeded with ``seed``,
    for a backend that seeds each conversation on its own (one request per conversation).

    Row 0 uses ``seed`` itself (one conversation samples as the call's seed says); later rows a
    31-bit hash of ``(seed, row)``, so identical conversations in one call (the samples of a
    GRPO group) never share their noise. None stays None."""
    if seed is None or row == 0:
        return seed
    return _hashed(f"{seed}:row:{row}")


def episode_seed(seed: int, episode: int, turn: int) -> int:
    """The seed of turn ``turn`` of episode ``episode`` of a rollout seeded with ``seed`` (both
    0-based; the episode is its position in the rollout's specs): a 31-bit hash of the three,
    so it depends on neither the batch size nor which other episodes share a call. The rollout
    engine puts these in :attr:`SamplingParams.seeds` (an unseeded rollout sets none)."""
    return _hashed(f"{seed}:episode:{episode}:turn:{turn}")


def _hashed(key: str) -> int:
    """A 31-bit hash of ``key`` (31 bits: what every server's seed field accepts)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 2**31


@dataclass
class Completion:
    """One generated turn. Token ids and log-probs are set when the backend has them."""

    text: str
    message: dict[str, Any] | None = None
    """An assistant message with parsed ``tool_calls`` (OpenAI-style servers), else None."""
    prompt_token_ids: list[int] | None = None
    completion_token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    """Each generated token's log-probability under the full distribution at the sampling
    temperature (not renormalised over ``top_p``'s nucleus)."""
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
    model really produced. ``TransformersPolicy`` and ``OpenAIPolicy(..., tokenizer=...)`` do
    this; a policy that only sees text (an OpenAI-compatible chat endpoint, a script) leaves it
    False and is never passed ``prefixes``.
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


def as_text_function(responder: Any) -> Callable[..., str]:
    """``conversation -> text`` for a responder given as a rlenv ``Policy`` or a function.

    The function returned takes the conversation and the keywords ``seed``, ``max_new_tokens``
    and ``temperature`` (a plain function given as the responder is called with the
    conversation only)."""
    if hasattr(responder, "generate"):

        def generate(conversation: list[Message], **sampling: Any) -> str:
            (completion,) = responder.generate([conversation], [[]], SamplingParams(**sampling))
            return completion.text

        return generate
    if callable(responder):

        def call(conversation: list[Message], **_: Any) -> str:
            text = responder(conversation)
            if not isinstance(text, str):
                raise TypeError(f"the function must return a str, got {type(text).__name__}")
            return text

        return call
    raise ValueError(
        f"expected a rlenv Policy or a function of the conversation returning text; "
        f"got {responder!r:.80}"
    )
