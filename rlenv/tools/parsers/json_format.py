"""Plain JSON calls: the whole turn, or a fenced block, is one call object or a list of them.

Also home to the reading every JSON-object format shares under the cut-off policy: a call whose
JSON is complete is read even when the format's closing marker is missing (generation stopped,
the engine stripped the stop token); a call whose JSON the text ends inside is a ``CallError``
saying it was cut off, never a partial call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from rlenv.tools.parsers._base import (
    _LOOKS_LIKE_CALL,
    _RAW_CHARS,
    MAX_CALLS,
    CallError,
    ParsedCall,
    ParsedTurn,
    _call_from_object,
    _Calls,
    _decode,
    _dumps,
    _is_call_like,
    _line_col,
    _Parser,
    _Problem,
    _skip_space,
)

# --- Cut-off JSON (shared by the JSON-object formats) ------------------------------------------


def _json_cut_off(doc: str, pos: int) -> bool:
    """Whether the JSON starting at ``doc[pos]`` is cut off where ``doc`` ends: still open there
    (inside a string, or an object or list not closed) and, closed at that point, valid JSON. A
    text that is broken before its end (``{"a": {x}``) is malformed, not cut off."""
    closers, in_string, escaped = [], False, False
    for index in range(pos, len(doc)):
        char = doc[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            closers.append("}" if char == "{" else "]")
        elif char in "}]":
            if not closers or closers.pop() != char:
                return False
            if not closers:
                return False  # the value closed before the end: not cut off
    if not (closers or in_string):
        return False
    head = doc[pos:] + ('"' if in_string and not escaped else "")
    if escaped:
        head = doc[pos:-1] + '"'
    head = head.rstrip()
    if head.endswith(","):
        head = head[:-1]
    elif head.endswith(":"):
        head += " null"
    elif head.endswith(("{", "[")) is False and re.search(r'[{,]\s*"(?:[^"\\]|\\.)*"\Z', head):
        head += ": null"  # cut after an object key
    if re.search(r"(?:-|\d[.eE]|\d[eE][-+])\Z", head):  # cut inside a number
        head += "0"
    for literal in ("true", "false", "null"):  # cut inside a literal
        for size in range(1, len(literal)):
            if head.endswith(literal[:size]) and not head.endswith(literal):
                head = head[:-size] + literal
                break
    try:
        json.loads(head + "".join(reversed(closers)))
    except (ValueError, RecursionError):
        return False
    return True


def _cut_off_problem(problem: _Problem) -> _Problem:
    return _Problem(f"the call was cut off before its JSON ended ({problem})")


def _read_call(
    calls: _Calls, doc: str, pos: int, end: int | None = None, *, at_end: bool = True
) -> int:
    """Decode one call object at ``doc[pos]`` into ``calls``; returns where it ended.

    Broken JSON is recorded and ``len(doc)`` returned (the rest cannot be read); when ``doc``
    ends where the turn ends (``at_end``) and the JSON is still open there, the error says the
    call was cut off.
    """
    try:
        value, stop = _decode(doc, pos)
        calls.add(_call_from_object(value))
    except _Problem as problem:
        if at_end and _json_cut_off(doc, pos):
            problem = _cut_off_problem(problem)
        calls.fail(problem, doc[pos:end])
        return len(doc)
    return stop


def _read_call_list(calls: _Calls, doc: str, pos: int, *, at_end: bool = True) -> int:
    """Read a JSON list of call objects starting at ``doc[pos] == '['``; returns its end.

    Elements are decoded one by one so each error names its call and its position. A list whose
    closing ``]`` is missing keeps its complete calls; an element the text ends inside is an
    error saying it was cut off.
    """
    pos = _skip_space(doc, pos + 1)
    if doc.startswith("]", pos):
        return pos + 1
    while pos < len(doc):
        if calls.full:
            calls.overflow(doc[pos:])
            return len(doc)
        start = pos
        pos = _read_call(calls, doc, pos, at_end=at_end)
        if pos >= len(doc):
            return pos
        pos = _skip_space(doc, pos)
        if doc.startswith(",", pos):
            pos = _skip_space(doc, pos + 1)
        elif doc.startswith("]", pos):
            return pos + 1
        elif pos < len(doc):
            line, column = _line_col(doc, pos)
            calls.errors.append(
                CallError(
                    f"after tool call {calls.count}: expected ',' or ']' at line {line}, "
                    f"column {column}; the rest of the list was ignored",
                    doc[start:][:_RAW_CHARS],
                )
            )
            return len(doc)
    return pos


# --- Plain JSON --------------------------------------------------------------------------------

_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n")


class JsonParser(_Parser):
    """Plain JSON, a fallback for models without a tool-call format.

    The whole text (after leading space) is ``{"name": ..., "arguments": {...}}`` or a list of
    them, or the calls sit in fenced blocks (```` ```json ````, text around them is content).
    JSON that is not meant as a call (no ``name``/``arguments``/``parameters``/``function`` key)
    is left as content; so is broken JSON without a ``"name":`` key. Cut off by the token limit:
    a fence left open after complete JSON is read; JSON the text ends inside is an error that
    says it was cut off.
    """

    name = "json"

    def _parse(self, text: str) -> ParsedTurn:
        calls = _Calls()
        pos = _skip_space(text, 0)
        if text.startswith(("{", "["), pos):
            stop = self._read_json(calls, text, pos, len(text), at_end=True)
            if stop is not None:
                return calls.turn(text[stop:])
        content, pos, fences = [], 0, 0
        while match := _FENCE.search(text, pos):
            fences += 1  # fences that hold no call are content; bound how many are read
            if fences > 4 * MAX_CALLS:
                break
            close = text.find("```", match.end())
            end = close if close >= 0 else len(text)
            after = close + 3 if close >= 0 else len(text)
            if calls.full:
                calls.overflow(text[match.start() :])
                content.append(text[pos:])
                return calls.turn(content)
            body = _skip_space(text, match.end())
            stop = (
                self._read_json(calls, text[:end], body, end, at_end=close < 0)
                if body < end
                else None
            )
            if stop is None:
                content.append(text[pos:after])  # not a call: the fence stays in the content
            else:
                content += [text[pos : match.start()], text[stop:end]]
            pos = after
        content.append(text[pos:])
        return calls.turn(content)

    @staticmethod
    def _read_json(calls: _Calls, doc: str, pos: int, end: int, *, at_end: bool) -> int | None:
        """Read calls from the JSON at ``doc[pos]``; ``None`` if it is not meant as calls.
        ``at_end``: ``doc`` ends where the turn ends (so open JSON there was cut off)."""
        try:
            value, _ = _decode(doc, pos)
        except _Problem as problem:
            if not _LOOKS_LIKE_CALL.search(doc, pos, end):
                return None
            if doc.startswith("[", pos):  # element by element: the error names its call
                return _read_call_list(calls, doc, pos, at_end=at_end)
            if at_end and _json_cut_off(doc, pos):
                problem = _cut_off_problem(problem)
            calls.fail(problem, doc[pos:end])
            return end
        if not _is_call_like(value):
            return None
        if isinstance(value, list):
            return _read_call_list(calls, doc, pos, at_end=at_end)
        return _read_call(calls, doc, pos, at_end=at_end)

    def render(self, calls: Sequence[ParsedCall], content: str = "") -> str:
        """One object (or a list for several calls); after content, in a ```` ```json ```` block."""
        items = [{"name": call.name, "arguments": call.arguments} for call in calls]
        payload = _dumps(items[0] if len(items) == 1 else items)
        if not content.strip():
            return payload if calls else ""
        return f"{content.strip()}\n```json\n{payload}\n```" if calls else content.strip()
