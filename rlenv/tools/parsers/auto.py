"""``auto``: each registered format in a fixed order, the first that finds a call wins."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rlenv.tools.parsers._base import (
    ParsedCall,
    ParsedTurn,
    ToolCallParser,
    _parse_with_tools,
    _Parser,
)
from rlenv.tools.parsers._registry import get_parser

# --- Auto --------------------------------------------------------------------------------------


AUTO_ORDER = (
    # Formats with their own special tokens: none can be mistaken for another.
    "harmony", "deepseek_v3", "kimi_k2", "minimax_m2", "gemma4", "functiongemma", "internlm",
    # <tool_call> is shared: Qwen3's XML and GLM's key/value pairs before Granite 3.1's list,
    # all before Hermes, which would report each of them as broken JSON.
    "qwen3_xml", "glm45", "granite", "hermes", "minimax_m1",
    # Markers that are words, then bare JSON and Python.
    "phi4_mini", "mistral", "llama3_json", "gemma", "json", "pythonic",
)  # fmt: skip
"""The formats ``auto`` tries, in order: a format whose markers are unambiguous comes before one
that could misread it (Qwen3's XML and GLM's pairs before Hermes, which shares their
``<tool_call>`` tag; ``functools[`` before Mistral's bare ``name{json}``)."""


class AutoParser(_Parser):
    """Tries each parser in turn and returns the first result with a call or an error.

    The default order is :data:`AUTO_ORDER`: formats with their own special tokens first, then
    those sharing ``<tool_call>`` (most specific first), then word markers, bare JSON and
    Python lists. Each parser applies its own family's reasoning policy (Kimi-K2-Thinking calls
    inside ``<think>``; the others never do), so ``auto`` hands them the whole text.
    :meth:`render` uses Hermes's format.
    """

    calls_in_reasoning = True  # each sub-parser blanks the reasoning its family does not call in
    name = "auto"

    def __init__(self, parsers: Sequence[ToolCallParser] | None = None) -> None:
        self._parsers = list(parsers) if parsers else None

    @property
    def parsers(self) -> list[ToolCallParser]:
        """The parsers tried, in order: those given, else :data:`AUTO_ORDER` as registered
        now (a parser registered with ``replace=True`` takes its format's place)."""
        if self._parsers is not None:
            return self._parsers
        return [get_parser(name) for name in AUTO_ORDER]

    def parse(self, text: str, tools: Sequence[Mapping[str, Any]] | None = None) -> ParsedTurn:
        """Each parser in turn (tools' schemas to those that take them). Never raises."""
        return self._guarded(text, lambda text: self._parse(text, tools))

    def _parse(self, text: str, tools: Sequence[Mapping[str, Any]] | None = None) -> ParsedTurn:
        for parser in self.parsers:
            turn = _parse_with_tools(parser, text, tools)
            if turn.calls or turn.errors:
                return turn
        return ParsedTurn(text.strip(), [], [])

    def render(self, calls: Sequence[ParsedCall], content: str = "") -> str:
        default = next((p for p in self.parsers if p.name == "hermes"), self.parsers[0])
        return default.render(calls, content)

    def __repr__(self) -> str:
        return f"AutoParser({[parser.name for parser in self.parsers]!r})"
