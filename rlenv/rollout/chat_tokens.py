"""``ChatTokens``: token-faithful multi-turn prompts from a tokenizer alone, no model.

Trainers that generate on their own servers (verl's agent loops, OpenRLHF's agent executors)
need what :class:`~rlenv.rollout.transformers.TransformersPolicy` does before it generates: the
opening prompt's ids from the chat template, then, after each model turn, the exact ids so far
extended with only the tokens of the environment's new messages. This class is that half of the
policy, sharing its implementation (the same methods, bound to a tokenizer instead of a model),
so the two can never disagree about which tokens an environment reply adds.

Trainers whose loop tokenises the environment's reply text itself (OpenRLHF) need the same
continuation as text: :meth:`ChatTokens.continuation_text`. Tokenised, it gives exactly the ids
``continued_prompt_ids`` adds (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlenv.chat import Message
from rlenv.rollout.transformers import (
    continuation_text,
    extend_prompt_ids,
    render_prompt_ids,
    stop_token_ids,
)

__all__ = ["ChatTokens"]


class ChatTokens:
    """Chat-template token ids for one tokenizer.

    Args:
        tokenizer: A Hugging Face tokenizer with a chat template.

    ``stop_ids`` are the end-of-turn ids generation stops at (EOS and the template's end-of-turn
    markers), the same set ``TransformersPolicy`` uses.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.stop_ids = stop_token_ids(tokenizer)

    def prompt_ids(
        self, conversation: Sequence[Message], tools: Sequence[dict[str, Any]] = ()
    ) -> list[int]:
        """The ids the model is fed for the next assistant turn, rendered from scratch (use it
        for the opening prompt only)."""
        return render_prompt_ids(self.tokenizer, conversation, tools)

    def continued_prompt_ids(
        self,
        conversation: Sequence[Message],
        tools: Sequence[dict[str, Any]],
        prefix: Sequence[int],
    ) -> list[int]:
        """``prefix`` (the exact ids up to and including the model's last turn) extended with the
        tokens of the messages after the last assistant message, ending with the generation
        prompt. Raises :class:`~rlenv.rollout.transformers.TemplateNotPrefixPreserving` when the
        template re-renders earlier turns."""
        return extend_prompt_ids(self.tokenizer, self.stop_ids, conversation, tools, prefix)

    def prompt_text(
        self, conversation: Sequence[Message], tools: Sequence[dict[str, Any]] = ()
    ) -> str:
        """The text :meth:`prompt_ids` tokenises: the conversation rendered with the generation
        prompt."""
        return self.tokenizer.apply_chat_template(
            list(conversation),
            tools=list(tools) or None,
            add_generation_prompt=True,
            tokenize=False,
        )

    def continuation_text(
        self, conversation: Sequence[Message], tools: Sequence[dict[str, Any]], stopped: bool
    ) -> str:
        """The text the chat template adds after the model's last turn (see
        :func:`rlenv.rollout.transformers.continuation_text`); tokenised, it gives the ids
        :meth:`continued_prompt_ids` appends."""
        return continuation_text(self.tokenizer, conversation, tools, stopped)
