"""Where a model's reasoning is in its text: the one definition parsers and verifiers share.

Families that think write their reasoning between markers: ``<think>...</think>`` (Qwen3,
DeepSeek-R1, GLM, Kimi, MiniMax), ``[THINK]...[/THINK]`` (Magistral, Ministral 3) and
``<|channel>thought ... <channel|>`` (Gemma 4). GPT-OSS's Harmony keeps reasoning in its
analysis channel, which its own parser reads. Reasoning never answers a question and never
calls a tool (except for families that call while thinking; see ``docs/tool-call-formats.md``).
"""

from __future__ import annotations

import functools
import re

__all__ = ["REASONING_OPENERS", "final_text", "reasoning_spans"]

_REASONING_CLOSERS = {
    "<think>": "</think>",
    "[THINK]": "[/THINK]",
    "<|channel>thought": "<channel|>",
}
"""Reasoning blocks: ``<think>`` (Qwen3, DeepSeek-R1, GLM, Kimi, MiniMax), ``[THINK]``
(Magistral, Ministral 3: special tokens, decoded as text) and Gemma 4's thought channel
(``<|channel>thought ... <channel|>``)."""
REASONING_OPENERS = tuple(_REASONING_CLOSERS)
"""The reasoning blocks every built-in parser sets apart, unless its family has its own
(``reasoning_openers`` on the parser: Harmony's reasoning is its analysis channel)."""


@functools.lru_cache(maxsize=32)
def _reasoning_patterns(openers: tuple[str, ...]) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """(any marker, any opener) of the blocks ``openers`` start."""
    closers = [_REASONING_CLOSERS[opener] for opener in openers]
    marker = "|".join(re.escape(m) for m in (*openers, *closers))
    return re.compile(marker), re.compile("|".join(re.escape(m) for m in openers))


def reasoning_spans(
    text: str, openers: tuple[str, ...] = REASONING_OPENERS
) -> list[tuple[int, int, str]]:
    """``(start, end, reasoning)`` of each reasoning block of ``text``, markers included.

    A text whose first marker is a closer began inside the block (the chat template opened it in
    the prompt): all before that closer is reasoning. A block never closed (generation stopped
    while thinking) runs to the end of the text.
    """
    if not openers:
        return []
    markers, opening = _reasoning_patterns(openers)
    first = markers.search(text)
    if first is None:
        return []
    spans, pos = [], 0
    if first.group() not in _REASONING_CLOSERS:  # a closer first: the prompt opened the block
        spans.append((0, first.end(), text[: first.start()]))
        pos = first.end()
    while (opener := opening.search(text, pos)) is not None:
        closer = _REASONING_CLOSERS[opener.group()]
        close = text.find(closer, opener.end())
        if close < 0:
            spans.append((opener.start(), len(text), text[opener.end() :]))
            break
        spans.append((opener.start(), close + len(closer), text[opener.end() : close]))
        pos = close + len(closer)
    return spans


def final_text(text: object) -> str | None:
    """The text after the last reasoning block: what may answer. ``None`` for a non-string or
    a text that ends inside a block (the model never finished thinking, so it never answered).
    A text whose first marker is a closer began in a block the prompt opened."""
    if not isinstance(text, str):
        return None
    spans = reasoning_spans(text)
    if not spans:
        return text
    start, end, _ = spans[-1]
    opener = next((o for o in _REASONING_CLOSERS if text.startswith(o, start)), None)
    if opener is not None and not text.endswith(_REASONING_CLOSERS[opener], 0, end):
        return None  # the last block never closed
    return text[end:]
