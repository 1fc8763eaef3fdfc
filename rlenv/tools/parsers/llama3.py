"""Llama 3.1 JSON calls (``<|python_tag|>``) and ``<function=name>{...}</function>``."""

from __future__ import annotations

from collections.abc import Sequence

from rlenv.tools.parsers._base import (
    _LOOKS_LIKE_CALL,
    ParsedCall,
    ParsedTurn,
    _arguments,
    _Calls,
    _check_name,
    _decode,
    _dumps,
    _is_call_like,
    _line_col,
    _Parser,
    _Problem,
    _read_call,
    _skip_space,
)

# --- Llama 3.1 JSON ----------------------------------------------------------------------------

_LLAMA_END_TOKENS = ("<|eom_id|>", "<|eot_id|>")
_PYTHON_TAG = "<|python_tag|>"


def _cut_at_end_token(text: str) -> str:
    """The text up to the first end-of-message token (what follows it was never meant)."""
    ends = [index for token in _LLAMA_END_TOKENS if (index := text.find(token)) >= 0]
    return text[: min(ends)] if ends else text


class Llama3JsonParser(_Parser):
    """Llama 3.1 JSON tool calls, as vLLM's ``llama3_json`` parser reads them.

    ``<|python_tag|>{"name": "f", "parameters": {"x": 1}}`` (``"arguments"`` also accepted),
    several objects separated by ``;``, ended by an optional ``<|eom_id|>`` or ``<|eot_id|>``
    (text after it is dropped). Without ``<|python_tag|>`` the text must start with ``{``, and an
    object with none of the keys ``name``, ``parameters``, ``arguments`` is an answer, not a
    call. Text before ``<|python_tag|>`` and after the last call is content. Also read: the
    ``<function=name>{...}</function>`` form.
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
                return calls.turn(text)
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
            pos = _skip_space(text, _read_call(calls, text, pos))
            if not text.startswith(";", pos):
                break
            pos = _skip_space(text, pos + 1)
        content.append(text[pos:])
        return calls.turn(content)

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
                value, stop = _decode(text[:end], body)
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
