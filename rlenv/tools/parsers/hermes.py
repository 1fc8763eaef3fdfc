"""Hermes / Qwen 2.5 / Qwen3 (non-coder): ``<tool_call>{json}</tool_call>`` blocks."""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Sequence

from rlenv.tools.parsers._base import (
    ParsedCall,
    ParsedTurn,
    _call_from_object,
    _Calls,
    _cut_off_problem,
    _decode,
    _dumps,
    _json_cut_off,
    _line_col,
    _Parser,
    _Problem,
    _skip_space,
)
from rlenv.tools.parsers.pythonic import _json_safe

# --- Hermes / Qwen -----------------------------------------------------------------------------

# Blocks that share the <tool_call> tag but are another format's: Qwen3-Coder's XML
# (<function=NAME>) and GLM-4.5's `NAME` then <arg_key>/<arg_value> pairs (or nothing).
_OTHER_FORMAT = re.compile(
    r"\s*(?:<function=|[A-Za-z_][\w.-]{0,63}\s*(?:<arg_key>|</tool_call>|\Z))"
)
_FENCE_OPEN = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n")
_FENCE_CLOSE = re.compile(r"\s*```")


class HermesParser(_Parser):
    """Hermes / Qwen 2.5 / Qwen 3: one ``<tool_call>`` block per call.

    ``<tool_call>\\n{"name": "f", "arguments": {"x": 1}}\\n</tool_call>``. Keys may come in any
    order. Also read, as models write them: the JSON inside a ```` ```json ```` fence within the
    block, and a Python-style dict with single quotes (``{'name': 'f', 'arguments': {}}``, read
    with :func:`ast.literal_eval`, never evaluated). Text outside the blocks (``<think>``
    included) is the content.

    Cut-off policy: a block whose JSON is complete but whose ``</tool_call>`` is missing
    (generation stopped) is read, and text after its JSON is content; a block the text ends
    inside its JSON is an error saying it was cut off.

    Blocks of the formats that share the tag are left in the content, not reported as broken
    JSON: Qwen3-Coder's ``<function=NAME>`` XML (``qwen3_xml``) and GLM-4.5's ``NAME`` followed
    by ``<arg_key>`` pairs (``glm45``).
    """

    name = "hermes"
    open_tag = "<tool_call>"
    close_tag = "</tool_call>"

    def _parse(self, text: str) -> ParsedTurn:
        calls, content, pos = _Calls(), [], 0
        while (start := text.find(self.open_tag, pos)) >= 0:
            body = start + len(self.open_tag)
            if _OTHER_FORMAT.match(text, body):
                content.append(text[pos:body])  # another format's block: left as text
                pos = body
                continue
            content.append(text[pos:start])
            if calls.full:
                calls.overflow(text[start:])
                return calls.turn(content)
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
        fence = _FENCE_OPEN.match(text, start, end)
        if fence:
            start = _skip_space(text, fence.end())
        # A prefix of the text, not a slice: JSON errors then report the turn's line and column.
        doc = text[:end]
        try:
            try:
                value, stop = _decode(doc, start)
            except _Problem as problem:
                value, stop = _python_dict(doc, start, end, problem)
            call = _call_from_object(value)
        except _Problem as problem:
            if end == len(text) and _json_cut_off(doc, start):
                problem = _cut_off_problem(problem)
            calls.fail(problem, raw)
            return
        if fence and (fence_close := _FENCE_CLOSE.match(text, stop, end)):
            stop = fence_close.end()
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


def _python_dict(doc: str, start: int, end: int, problem: _Problem) -> tuple[object, int]:
    """A block written as a Python dict literal (single quotes, ``True``/``None``), as some
    models write it; re-raises ``problem`` (the JSON error) when it is not one."""
    if not doc.startswith(("{'", "{ '"), start):
        raise problem
    source = doc[start:end].rstrip()
    if source.endswith("```"):  # the closing fence of a fenced block
        source = source[:-3].rstrip()
    try:
        with warnings.catch_warnings():  # e.g. "invalid escape sequence" in a string
            warnings.simplefilter("ignore")
            value = _json_safe(ast.literal_eval(source))
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        raise problem from None
    return value, start + len(source)
