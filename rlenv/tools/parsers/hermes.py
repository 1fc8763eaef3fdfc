"""Hermes / Qwen 2.5 / Qwen3 (non-coder): ``<tool_call>{json}</tool_call>`` blocks."""

from __future__ import annotations

from collections.abc import Sequence

from rlenv.tools.parsers._base import (
    ParsedCall,
    ParsedTurn,
    _call_from_object,
    _Calls,
    _decode,
    _dumps,
    _line_col,
    _Parser,
    _Problem,
    _skip_space,
)

# --- Hermes / Qwen -----------------------------------------------------------------------------


class HermesParser(_Parser):
    """Hermes / Qwen 2.5 / Qwen 3: one ``<tool_call>`` block per call.

    ``<tool_call>\\n{"name": "f", "arguments": {"x": 1}}\\n</tool_call>``. Keys may come in any
    order. A block left open (generation stopped before ``</tool_call>``) is still read; text
    after its JSON is content. Text outside the blocks (``<think>`` included) is the content.
    """

    name = "hermes"
    open_tag = "<tool_call>"
    close_tag = "</tool_call>"

    def _parse(self, text: str) -> ParsedTurn:
        calls, content, pos = _Calls(), [], 0
        while (start := text.find(self.open_tag, pos)) >= 0:
            content.append(text[pos:start])
            if calls.full:
                calls.overflow(text[start:])
                return calls.turn(content)
            body = start + len(self.open_tag)
            close = text.find(self.close_tag, body)
            following = text.find(self.open_tag, body)
            closed = close >= 0 and (following < 0 or close < following)
            if closed:
                end, pos = close, close + len(self.close_tag)
            else:
                end = pos = following if following >= 0 else len(text)
            self._read_block(calls, content, text, body, end, closed)
        content.append(text[pos:])
        return calls.turn(content)

    def _read_block(
        self, calls: _Calls, content: list[str], text: str, body: int, end: int, closed: bool
    ) -> None:
        start = _skip_space(text, body)
        raw = text[body:end].strip()
        if start >= end:
            calls.fail(f"empty {self.open_tag} block", raw)
            return
        # A prefix of the text, not a slice: JSON errors then report the turn's line and column.
        doc = text[:end]
        try:
            value, stop = _decode(doc, start)
            call = _call_from_object(value)
        except _Problem as problem:
            calls.fail(problem, raw)
            return
        rest = text[stop:end].strip()
        if rest and closed:
            line, column = _line_col(text, _skip_space(text, stop))
            calls.fail(
                f"unexpected text after the JSON object at line {line}, column {column}", raw
            )
            return
        calls.add(call)
        content.append(rest)

    def render(self, calls: Sequence[ParsedCall], content: str = "") -> str:
        """Qwen's chat-template layout: content, then one block per call, newline-separated."""
        parts = [content.strip()] if content.strip() else []
        for call in calls:
            payload = _dumps({"name": call.name, "arguments": call.arguments})
            parts.append(f"{self.open_tag}\n{payload}\n{self.close_tag}")
        return "\n".join(parts)
