"""Mistral: ``[TOOL_CALLS][...]`` lists and the v11+ ``[TOOL_CALLS]name[ARGS]{...}`` form."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlenv.tools.parsers._base import (
    MAX_CALLS,
    ParsedCall,
    ParsedTurn,
    _arguments,
    _Calls,
    _check_name,
    _decode,
    _dumps,
    _Parser,
    _Problem,
    _read_call,
    _read_call_list,
    _skip_space,
)

# --- Mistral -----------------------------------------------------------------------------------

_TOOL_CALLS = "[TOOL_CALLS]"
_ARGS = "[ARGS]"
_CALL_ID = "[CALL_ID]"


class MistralParser(_Parser):
    """Mistral: ``[TOOL_CALLS]`` then a JSON list, or the newer ``name[ARGS]{...}`` form.

    Older tokenizers (v2-v7): ``[TOOL_CALLS][{"name": "f", "arguments": {...}, "id": "..."}]``.
    Newer (v11+): ``[TOOL_CALLS]f[CALL_ID]a1b2c3d4e[ARGS]{...}`` per call, ``[CALL_ID]``
    optional. Text before the first ``[TOOL_CALLS]`` is the content; a trailing ``</s>`` is
    dropped. ``style`` picks the form :meth:`render` writes: ``"args"`` (newer) or ``"list"``.
    """

    name = "mistral"

    def __init__(self, style: str = "args") -> None:
        if style not in ("args", "list"):
            raise ValueError(f"style must be 'args' or 'list', got {style!r}")
        self.style = style

    def _parse(self, text: str) -> ParsedTurn:
        calls = _Calls()
        first = text.find(_TOOL_CALLS)
        if first < 0:
            return calls.turn(text)
        content, start, segments = [text[:first]], first, 0
        while start >= 0:
            segments += 1  # each segment holds at least one call, unless it is empty: bound both
            if calls.full or segments > MAX_CALLS:
                calls.overflow(text[start:])
                break
            body = start + len(_TOOL_CALLS)
            start = text.find(_TOOL_CALLS, body)
            end = start if start >= 0 else len(text)
            content.append(self._read_segment(calls, text, body, end))
        content = [piece.replace("</s>", "") for piece in content]
        return calls.turn(content)

    def _read_segment(self, calls: _Calls, text: str, body: int, end: int) -> str:
        """Read the calls after one ``[TOOL_CALLS]``; returns the text left over (content)."""
        doc = text[:end]  # a prefix, so JSON errors report the turn's line and column
        pos = _skip_space(doc, body)
        if pos >= end:
            calls.fail(f"nothing after {_TOOL_CALLS}", text[body - len(_TOOL_CALLS) : end])
            return ""
        if doc.startswith("[", pos):
            pos = _read_call_list(calls, doc, pos)
        elif doc.startswith("{", pos):
            pos = _read_call(calls, doc, pos)
        else:
            pos = self._read_args_form(calls, doc, pos)
        return doc[pos:]

    def _read_args_form(self, calls: _Calls, doc: str, pos: int) -> int:
        args = doc.find(_ARGS, pos)
        if args < 0:
            calls.fail(f"expected '{_ARGS}' after the function name", doc[pos:])
            return len(doc)
        head = doc[pos:args]
        name, _, call_id = head.partition(_CALL_ID)
        body = _skip_space(doc, args + len(_ARGS))
        try:
            name = _check_name(name.strip())
            if body >= len(doc):
                arguments, stop = {}, body
            else:
                value, stop = _decode(doc, body)
                arguments = _arguments(value, "arguments")
        except _Problem as problem:
            calls.fail(problem, doc[pos:])
            return len(doc)
        calls.add(ParsedCall(name, arguments, call_id.strip() or None))
        return stop

    def render(self, calls: Sequence[ParsedCall], content: str = "") -> str:
        text = content.strip()
        if not calls:
            return text
        if self.style == "list":
            items = []
            for call in calls:
                item: dict[str, Any] = {"name": call.name, "arguments": call.arguments}
                if call.id is not None:
                    item["id"] = call.id
                items.append(item)
            return f"{text}{_TOOL_CALLS}{_dumps(items)}"
        for call in calls:
            call_id = f"{_CALL_ID}{call.id}" if call.id is not None else ""
            text += f"{_TOOL_CALLS}{call.name}{call_id}{_ARGS}{_dumps(call.arguments)}"
        return text

    def __repr__(self) -> str:
        return f"MistralParser(style={self.style!r})"
