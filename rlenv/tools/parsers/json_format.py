"""Plain JSON calls: the whole turn, or a fenced block, is one call object or a list of them.

Also home to the reading every JSON-object format shares under the cut-off policy: a call whose
JSON is complete is read even when the format's closing marker is missing (generation stopped,
the engine stripped the stop token); a call whose JSON the text ends inside is a ``CallError``
saying it was cut off, never a partial call.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rlenv.tools.parsers._base import (
    _LOOKS_LIKE_CALL,
    MAX_CALLS,
    ParsedCall,
    ParsedTurn,
    _Calls,
    _cut_off_problem,
    _decode,
    _dumps,
    _is_call_like,
    _json_cut_off,
    _Parser,
    _Problem,
    _read_call,
    _read_call_list,
    _skip_space,
)

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
