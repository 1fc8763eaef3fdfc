"""Llama 3.1 JSON calls (``<|python_tag|>``) and ``<function=name>{...}</function>``."""

from __future__ import annotations

import re
from collections.abc import Sequence

from rlenv.tools.parsers._base import (
    _LOOKS_LIKE_CALL,
    ParsedCall,
    ParsedTurn,
    _arguments,
    _Calls,
    _check_name,
    _cut_off_problem,
    _decode,
    _dumps,
    _is_call_like,
    _json_cut_off,
    _line_col,
    _Parser,
    _Problem,
    _read_call,
    _skip_space,
)

# --- Llama 3.1 JSON ----------------------------------------------------------------------------

_LLAMA_END_TOKENS = ("<|eom_id|>", "<|eot_id|>")
_PYTHON_TAG = "<|python_tag|>"
_CALL_IN_PROSE = re.compile(r'\{\s*"name"\s*:')
_FENCE_BEFORE = re.compile(r"```[ \t]*\w*[ \t]*\n\s*\Z")


def _is_llama_call(value: object) -> bool:
    """Exactly Llama's call object: a string ``name`` and an object of ``parameters`` (or
    ``arguments``), nothing else. Only such an object is read as a call in the middle of prose."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("name"), str)
        and len(value) == 2
        and any(isinstance(value.get(key), dict) for key in ("parameters", "arguments"))
    )


def _cut_at_end_token(text: str) -> str:
    """The text up to the first end-of-message token (what follows it was never meant)."""
    ends = [index for token in _LLAMA_END_TOKENS if (index := text.find(token)) >= 0]
    return text[: min(ends)] if ends else text


class Llama3JsonParser(_Parser):
    """Llama 3.1 JSON tool calls, as vLLM's ``llama3_json`` parser reads them.

    ``<|python_tag|>{"name": "f", "parameters": {"x": 1}}`` (``"arguments"`` also accepted),
    several objects separated by ``;``, by a repeated ``<|python_tag|>`` or by a line break,
    ended by an optional ``<|eom_id|>`` or ``<|eot_id|>`` (text after it is dropped). Without
    ``<|python_tag|>``, the text starts with ``{`` (an object with none of the keys ``name``,
    ``parameters``, ``arguments`` is an answer, not a call), or prose comes first and the call
    is exactly ``{"name": ..., "parameters": {...}}`` (no other key), as Llama 3.2 writes it.
    Text before the calls and after the last one is content. Also read: the
    ``<function=name>{...}</function>`` form.

    Cut-off policy: a call whose JSON is complete is read without its end token (or
    ``</function>``); a call the text ends inside is an error that says it was cut off.
    """

    name = "llama3_json"

    def _parse(self, text: str) -> ParsedTurn:
        text = _cut_at_end_token(text)
        if "<function=" in text:
            return self._parse_function_tags(text)
        calls = _Calls()
        tag = text.find(_PYTHON_TAG)
        if tag >= 0:
            content, pos = [text[:tag]], _skip_space(text, tag + len(_PYTHON_TAG))
        else:
            content, pos = [], _skip_space(text, 0)
            if not text.startswith("{", pos):
                pos = self._call_in_prose(text)
                if pos < 0:
                    return calls.turn(text)
                content.append(text[:pos])
            # No marker: only something that is meant as a call counts as one.
            try:
                first, _ = _decode(text, pos)
            except _Problem:
                if not _LOOKS_LIKE_CALL.search(text):
                    return calls.turn(text)
            else:
                if not _is_call_like(first):
                    return calls.turn(text)
        while pos < len(text):
            if calls.full:
                calls.overflow(text[pos:])
                return calls.turn(content)
            stop = _read_call(calls, text, pos)
            pos = _skip_space(text, stop)
            if text.startswith(";", pos):
                pos = _skip_space(text, pos + 1)
                if text.startswith(_PYTHON_TAG, pos):
                    pos = _skip_space(text, pos + len(_PYTHON_TAG))
            elif text.startswith(_PYTHON_TAG, pos):
                pos = _skip_space(text, pos + len(_PYTHON_TAG))
            elif not ("\n" in text[stop:pos] and self._starts_call(text, pos)):
                break
        content.append(text[pos:])
        return calls.turn(content)

    @staticmethod
    def _starts_call(text: str, pos: int) -> bool:
        """Whether a call object starts at ``text[pos]`` (for calls one per line)."""
        if not text.startswith("{", pos):
            return False
        try:
            value, _ = _decode(text, pos)
        except _Problem:
            return bool(_LOOKS_LIKE_CALL.match(text, pos + 1) or _CALL_IN_PROSE.match(text, pos))
        return _is_call_like(value)

    @staticmethod
    def _call_in_prose(text: str) -> int:
        """Where the first exact Llama call object after prose starts; -1 if there is none."""
        for match in _CALL_IN_PROSE.finditer(text):
            if _FENCE_BEFORE.search(text, 0, match.start()):
                continue  # a fenced call is the ``json`` format's
            try:
                value, _ = _decode(text, match.start())
            except _Problem:
                continue
            if _is_llama_call(value):
                return match.start()
        return -1

    def _parse_function_tags(self, text: str) -> ParsedTurn:
        calls, content, pos = _Calls(), [], 0
        while (start := text.find("<function=", pos)) >= 0:
            content.append(text[pos:start])
            if calls.full:
                calls.overflow(text[start:])
                return calls.turn(content)
            name_start = start + len("<function=")
            name_end = text.find(">", name_start, name_start + 200)
            close = text.find("</function>", name_start)
            end = close if close >= 0 else len(text)
            pos = close + len("</function>") if close >= 0 else len(text)
            raw = text[start:pos]
            if name_end < 0 or (close >= 0 and name_end > close):
                calls.fail("'<function=' without a closing '>' after the name", raw)
                continue
            try:
                name = _check_name(text[name_start:name_end].strip())
                body = _skip_space(text, name_end + 1)
                if body >= end:
                    calls.add(ParsedCall(name, {}))
                    continue
                try:
                    value, stop = _decode(text[:end], body)
                except _Problem as problem:
                    if close < 0 and _json_cut_off(text, body):
                        raise _cut_off_problem(problem) from None
                    raise
                arguments = _arguments(value, "arguments")
                if text[stop:end].strip():
                    line, column = _line_col(text, _skip_space(text, stop))
                    raise _Problem(
                        f"unexpected text after the JSON arguments at line {line}, column {column}"
                    )
            except _Problem as problem:
                calls.fail(problem, raw)
                continue
            calls.add(ParsedCall(name, arguments))
        content.append(text[pos:])
        return calls.turn(content)

    def render(self, calls: Sequence[ParsedCall], content: str = "") -> str:
        """``{"name": ..., "parameters": ...}`` objects joined by ``; ``; with content first,
        the calls follow ``<|python_tag|>``. End tokens are left out (decoders drop them)."""
        payload = "; ".join(_dumps({"name": c.name, "parameters": c.arguments}) for c in calls)
        if content.strip():
            return f"{content.strip()}{_PYTHON_TAG}{payload}" if calls else content.strip()
        return payload
