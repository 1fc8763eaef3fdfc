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
    "harmony", "deepseek_v3", "qwen3_xml", "hermes", "mistral", "llama3_json", "json",
)  # fmt: skip
"""The formats ``auto`` tries, in order: a format whose markers are unambiguous comes before one
that could misread it (Qwen3's XML before Hermes, which shares its ``<tool_call>`` tag)."""


class AutoParser(_Parser):
    """Tries each parser in turn and returns the first result with a call or an error.

    The default order is ``harmony`` (it reads only GPT-OSS's ``to=functions.`` messages),
    ``deepseek_v3`` (only DeepSeek's full-width tokens; it reads V3.1's layout too),
    ``qwen3_xml`` (it reads only ``<tool_call>`` blocks holding
    ``<function=...>``, which Hermes would misread as broken JSON), ``hermes``, ``mistral``,
    ``llama3_json``, ``json``. :meth:`render` uses Hermes's format.
    """

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
