"""Mistral: ``[TOOL_CALLS][...]`` lists, the v11+ ``[TOOL_CALLS]name[ARGS]{...}`` form, and both
as inference engines decode them with their special tokens dropped."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from rlenv.tools.parsers._base import (
    MAX_CALLS,
    ParsedCall,
    ParsedTurn,
    _arguments,
    _Calls,
    _check_name,
    _cut_off_problem,
    _decode,
    _dumps,
    _json_cut_off,
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
# One call of the v11+ form: NAME, an optional [CALL_ID]id, an optional [ARGS] (decoders that
# skip special tokens drop it), then the arguments' JSON object.
_NAMED_CALL = re.compile(
    r"([A-Za-z_][A-Za-z0-9_.-]{0,63})(?:\[CALL_ID\]([A-Za-z0-9_-]{1,64}))?(\[ARGS\])?"
)
# Where an unmarked call may start after content: a name at a word boundary, or a JSON list.
_UNMARKED_START = re.compile(r"(?<![\w.-])[A-Za-z_][A-Za-z0-9_.-]{0,63}(?=\[ARGS\]|\{)|\[\s*\{")


class MistralParser(_Parser):
    """Mistral: ``[TOOL_CALLS]`` then a JSON list, or the newer ``name[ARGS]{...}`` form.

    Older tokenizers (v2-v7): ``[TOOL_CALLS][{"name": "f", "arguments": {...}, "id": "..."}]``.
    Newer (v11+): ``[TOOL_CALLS]f[CALL_ID]a1b2c3d4e[ARGS]{...}`` per call, ``[CALL_ID]``
    optional. Text before the first ``[TOOL_CALLS]`` is the content; a trailing ``</s>`` is
    dropped. ``style`` picks the form :meth:`render` writes: ``"args"`` (newer) or ``"list"``.

    **Special tokens dropped.** Engines that decode with ``skip_special_tokens`` (vLLM with
    ``mistral_common``, ``mistral-inference``) drop ``[ARGS]``, and often ``[TOOL_CALLS]`` too.
    Read, as they produce it:

    - ``[TOOL_CALLS]f{"x": 1}`` (``[ARGS]`` dropped), anywhere a ``[TOOL_CALLS]`` form is read;
    - ``f[ARGS]{"x": 1}`` without ``[TOOL_CALLS]``: ``[ARGS]`` alone marks the call;
    - with no marker at all, ``f{"x": 1}`` (several back to back) or a JSON list of call objects
      ``[{"name": ..., "arguments": ...}]``, **only** when the calls are the whole turn (after
      leading space, up to a trailing ``</s>``), or, after content, when they run to the end of
      the turn and every name is one of the ``tools`` given to ``parse(text, tools=...)``.
      Prose such as ``use f{x}`` or ``result{"a": 1} below`` is never a call.

    A ``[CALL_ID]`` dropped as well leaves the id glued to the name; that is not undone.
    Magistral's ``[THINK]...[/THINK]`` is set apart as reasoning before calls are read (see
    :class:`_Parser`), so a call written while thinking is never a call.

    Cut-off policy: a call whose JSON is complete is read even when what should follow it is
    missing (a list's ``]``); a call the text ends inside (no arguments yet, or unfinished JSON)
    is an error that says it was cut off.
    """

    name = "mistral"
    reads_schemas = True

    def __init__(self, style: str = "args") -> None:
        if style not in ("args", "list"):
            raise ValueError(f"style must be 'args' or 'list', got {style!r}")
        self.style = style

    def _parse(self, text: str, known: Mapping[str, Any] | None = None) -> ParsedTurn:
        calls = _Calls()
        first = text.find(_TOOL_CALLS)
        if first < 0:
            return self._parse_unmarked(text, set(known or ()))
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
        at_end = end == len(text)
        pos = _skip_space(doc, body)
        if pos >= end:
            if at_end:
                calls.fail(
                    f"the call was cut off after {_TOOL_CALLS}", text[body - len(_TOOL_CALLS) : end]
                )
            else:
                calls.fail(f"nothing after {_TOOL_CALLS}", text[body - len(_TOOL_CALLS) : end])
            return ""
        if doc.startswith("[", pos):
            pos = _read_call_list(calls, doc, pos, at_end=at_end)
        elif doc.startswith("{", pos):
            pos = _read_call(calls, doc, pos, at_end=at_end)
        else:
            pos = _read_named_calls(calls, doc, pos, at_end=at_end, strict=True)
        return doc[pos:]

    def _parse_unmarked(self, text: str, known: set[str]) -> ParsedTurn:
        """Calls written without ``[TOOL_CALLS]`` (see the class docstring for when)."""
        # (where a run of calls may start, it must run to the end of the turn, names known)
        candidates = [(_skip_space(text, 0), True, False)]
        args = text.find(_ARGS)
        if args >= 0 and (marked := _NAMED_CALL_BEFORE_ARGS.search(text, 0, args + len(_ARGS))):
            candidates.append((marked.start(), False, False))  # [ARGS] marks the call itself
        if known:
            candidates += [(m.start(), True, True) for m in _UNMARKED_START.finditer(text)]
        for start, to_the_end, names_known in candidates:
            calls = _Calls()
            stop = _read_run(calls, text, start)
            if stop is None:
                continue
            rest = text[stop:].replace("</s>", "")
            if to_the_end and rest.strip():
                continue
            if names_known and any(call.name not in known for call in calls.calls):
                continue
            return calls.turn([text[:start], rest])
        return ParsedTurn(text.strip(), [], [])

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


_NAMED_CALL_BEFORE_ARGS = re.compile(
    r"(?<![\w.-])[A-Za-z_][A-Za-z0-9_.-]{0,63}(?:\[CALL_ID\][A-Za-z0-9_-]{1,64})?\[ARGS\]\Z"
)


def _read_named_calls(calls: _Calls, doc: str, pos: int, *, at_end: bool, strict: bool) -> int:
    """Read ``NAME[CALL_ID]id[ARGS]{...}`` calls back to back from ``doc[pos]``; returns where
    the last one ended. ``strict``: a first call that does not fit is an error (after a
    ``[TOOL_CALLS]``); otherwise nothing is recorded and ``pos`` returned."""
    while pos < len(doc):
        match = _NAMED_CALL.match(doc, pos)
        body = _skip_space(doc, match.end()) if match else pos
        if match is None or not (match.group(3) or doc.startswith("{", body)):
            if not strict:
                return pos
            if match and body >= len(doc) and at_end:
                calls.fail("the call was cut off before its arguments", doc[pos:])
            else:
                problem = f"expected '{_ARGS}' or a JSON object after the function name"
                calls.fail(problem, doc[pos:])
            return len(doc)
        if calls.full:
            calls.overflow(doc[pos:])
            return len(doc)
        try:
            name = _check_name(match.group(1))
            if body >= len(doc):
                raise _Problem(f"the call was cut off after {_ARGS}" if at_end else "no arguments")
            value, stop = _decode(doc, body)
            arguments = _arguments(value, "arguments")
        except _Problem as problem:
            if at_end and body < len(doc) and _json_cut_off(doc, body):
                problem = _cut_off_problem(problem)
            calls.fail(problem, doc[pos:])
            return len(doc)
        calls.add(ParsedCall(name, arguments, match.group(2)))
        pos, strict = stop, False
    return pos


def _read_run(calls: _Calls, text: str, pos: int) -> int | None:
    """Read unmarked calls from ``text[pos]`` (a call list, or named calls back to back);
    returns where they end, or ``None`` when what is there is not a call."""
    if text.startswith("[", pos):
        try:
            value, _ = _decode(text, pos)
        except _Problem:
            value = None  # broken or cut off: a call list only if it starts like one
            if not re.match(r"\[\s*\{\s*\"(?:name|arguments)\"", text[pos : pos + 200]):
                return None
        if value is not None and not (
            isinstance(value, list)
            and value
            and all(isinstance(item, dict) and "name" in item for item in value)
        ):
            return None
        return _read_call_list(calls, text, pos)
    match = _NAMED_CALL.match(text, pos)
    if match is None:
        return None
    body = _skip_space(text, match.end())
    if not (match.group(3) or (text.startswith("{", body) and body == match.end())):
        return None
    if not match.group(3) and not re.match(r"\{\s*[\"}]", text[body : body + 50]):
        return None  # no marker at all: the object must at least start like JSON
    return _read_named_calls(calls, text, pos, at_end=True, strict=True)
