"""Calls written as a marker followed by a JSON list of call objects (or one object), as
Phi-4-mini (``functools[...]``) and Granite 3.x (``<|tool_call|>[...]``) write them.

The JSON itself is read by the shared readers of :mod:`json_format` (``_read_call_list``,
``_read_call``), under the shared cut-off policy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rlenv.tools.parsers._base import (
    ParsedCall,
    ParsedTurn,
    _Calls,
    _dumps,
    _read_call,
    _read_call_list,
    _skip_space,
)

_IDENTIFIER_CHAR = re.compile(r"[\w.]")


@dataclass(frozen=True)
class _Marker:
    """A string that may start a call list."""

    text: str
    opens: str = "[{"
    """The characters that, right after the marker (space allowed), begin the calls' JSON."""
    special: bool = False
    """A special token: it means a call whatever follows it, so anything but JSON after it is a
    malformed call. A plain-text marker followed by something else is just text."""
    word: bool = False
    """The marker must not continue an identifier (``functools`` but not ``my_functools``)."""


def _next_marker(text: str, pos: int, markers: Sequence[_Marker]) -> tuple[int, _Marker] | None:
    found: tuple[int, _Marker] | None = None
    for marker in markers:
        start = text.find(marker.text, pos)
        while marker.word and start > 0 and _IDENTIFIER_CHAR.match(text, start - 1):
            start = text.find(marker.text, start + 1)
        if start >= 0 and (found is None or start < found[0]):
            found = (start, marker)
    return found


def _bound(text: str, pos: int, stops: Sequence[str]) -> int:
    """Where the calls starting at ``pos`` must end: the first of ``stops`` after it, else the
    end of the text. (A JSON string holding one of them is cut there, as Hermes's is.)"""
    ends = [index for stop in stops if (index := text.find(stop, pos)) >= 0]
    return min(ends, default=len(text))


def _read_marked_json(text: str, markers: Sequence[_Marker], closers: Sequence[str]) -> ParsedTurn:
    """Every marker followed by calls in ``text``: a JSON list of call objects, or one object.

    A closer right after the JSON (``<|/tool_call|>``, ``</tool_call>``) is dropped; it may be
    missing (generation stopped, the stop token stripped). The JSON is bounded by the next
    closer or special marker: a list whose ``]`` is missing keeps its complete calls, and JSON
    the text ends inside is an error saying it was cut off.
    """
    stops = [*closers, *(marker.text for marker in markers if marker.special)]
    calls, content, pos, search = _Calls(), [], 0, 0
    while (found := _next_marker(text, search, markers)) is not None:
        start, marker = found
        after = start + len(marker.text)
        body = _skip_space(text, after)
        opener = text[body : body + 1]
        if not (opener and opener in marker.opens) and not marker.special:
            search = after  # a word in the text, not a call: it stays in the content
            continue
        content.append(text[pos:start])
        if calls.full:
            calls.overflow(text[start:])
            return calls.turn(content)
        end = _bound(text, after, stops)
        doc, at_end = text[:end], end == len(text)  # a prefix: errors give the turn's lines
        if not (opener and opener in marker.opens):
            shown = "a JSON list of calls" if marker.opens == "[" else "a JSON list or object"
            problem = (
                f"the call was cut off after {marker.text}"
                if at_end and body >= end
                else f"expected {shown} after {marker.text}"
            )
            calls.fail(problem, text[start:end])
            pos = search = _past_closer(text, end, closers)
            continue
        if opener == "[":
            if at_end and _skip_space(doc, body + 1) >= end:
                calls.fail(f"the call was cut off after {marker.text}[", text[start:end])
                return calls.turn(content)
            stop = _read_call_list(calls, doc, body, at_end=at_end)
        else:
            stop = _read_call(calls, doc, body, end, at_end=at_end)
        pos = search = _past_closer(text, stop, closers)
    content.append(text[pos:])
    return calls.turn(content)


def _past_closer(text: str, pos: int, closers: Sequence[str]) -> int:
    """``pos``, or past a closer that follows it (space allowed)."""
    after = _skip_space(text, pos)
    for closer in closers:
        if text.startswith(closer, after):
            return after + len(closer)
    return pos


def _call_list(calls: Sequence[ParsedCall]) -> str:
    """The calls as a JSON list of ``{"name", "arguments"}`` objects."""
    return _dumps([{"name": call.name, "arguments": call.arguments} for call in calls])
