"""Kimi-K2 (Instruct and Thinking): ``<|tool_calls_section_begin|>`` blocks whose calls are
``<|tool_call_begin|>functions.NAME:IDX<|tool_call_argument_begin|>{json}<|tool_call_end|>``."""

from __future__ import annotations

import re
from collections.abc import Sequence

from rlenv.tools.parsers._base import (
    NAME_PATTERN,
    ParsedCall,
    ParsedTurn,
    _arguments,
    _Calls,
    _check_name,
    _cut_off_problem,
    _decode,
    _dumps,
    _json_cut_off,
    _line_col,
    _Parser,
    _Problem,
    _skip_space,
)

# --- Kimi-K2 ------------------------------------------------------------------------------------

_SECTION_BEGIN = "<|tool_calls_section_begin|>"
_SECTION_END = "<|tool_calls_section_end|>"
_CALL_BEGIN = "<|tool_call_begin|>"
_ARGUMENT_BEGIN = "<|tool_call_argument_begin|>"
_CALL_END = "<|tool_call_end|>"
# The singular spelling of the section markers is accepted as well, as vLLM's kimi_k2 parser
# and the tinker cookbook's Kimi renderer accept it.
_MARKER = re.compile(
    r"<\|tool_calls?_section_(?:begin|end)\|>|<\|tool_call_begin\|>"
    r"|<\|tool_call_argument_begin\|>|<\|tool_call_end\|>"
)
# Where a call's id or arguments stop when its <|tool_call_end|> is missing.
_CALL_BOUNDARY = re.compile(r"<\|tool_calls?_section_(?:begin|end)\|>|<\|tool_call_begin\|>")
_CALL_ID = re.compile(r"(?:functions\.)?(?P<name>.+):(?P<index>\d+)", re.DOTALL)


class KimiK2Parser(_Parser):
    """Kimi-K2 Instruct and Thinking (Moonshot AI), and Kimi-K2.5.

    ``<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0
    <|tool_call_argument_begin|>{"city": "Paris"}<|tool_call_end|><|tool_calls_section_end|>``
    (no separators in the chat template's layout; whitespace around the id and the arguments
    is allowed, as engines write it). The call id ``functions.NAME:IDX`` names the function;
    it is kept whole in :attr:`ParsedCall.id` (Kimi's template writes it back verbatim in the
    next prompt, and ``## Return of functions.NAME:IDX`` heads the tool's result). Also read:
    an id without the ``functions.`` prefix (``get_weather:0``), the singular spelling
    ``<|tool_call_section_begin|>``, and calls whose section markers are missing. A name with
    dots (``functions.fs.read:0``) keeps them: ``fs.read``. Text outside the calls is the
    content.

    Cut-off policy: a call whose JSON arguments are complete but whose ``<|tool_call_end|>`` or
    ``<|tool_calls_section_end|>`` is missing (generation stopped) is read; a call the text
    ends inside (in its id or its JSON) is an error that says it was cut off, and so is a
    section opened with no call in it at the end of the text.

    Malformed calls are errors, never dropped: an id that is not ``NAME:IDX`` (vLLM skips
    those; a bare counter ``0``, which vLLM guesses a name for from the schemas, is refused
    here), an invalid name, invalid JSON, arguments that are not an object, text after the
    JSON, and an ``<|tool_call_argument_begin|>`` with no ``<|tool_call_begin|>`` before it.

    Kimi-K2-Thinking writes its calls inside its reasoning span, so ``calls_in_reasoning`` is
    set: calls written in ``<think>`` are real calls; the reasoning text is still not content.
    """

    name = "kimi_k2"
    calls_in_reasoning = True

    def _parse(self, text: str) -> ParsedTurn:
        calls, content, pos = _Calls(), [], 0
        while (marker := _MARKER.search(text, pos)) is not None:
            content.append(text[pos : marker.start()])
            token, pos = marker.group(), marker.end()
            if token == _CALL_BEGIN:
                if calls.full:
                    calls.overflow(text[marker.start() :])
                    return calls.turn(content)
                pos = self._read_call(calls, content, text, marker.start(), pos)
            elif token == _ARGUMENT_BEGIN:
                pos = self._stray_arguments(calls, text, marker.start(), pos)
            elif token.endswith("section_begin|>") and not text[pos:].strip() and not calls.count:
                calls.fail(f"the text was cut off right after {token}", text[marker.start() :])
            # other section markers, and a stray <|tool_call_end|>: markup, not content
        content.append(text[pos:])
        return calls.turn(content)

    def _read_call(
        self, calls: _Calls, content: list[str], text: str, start: int, body: int
    ) -> int:
        """Read the call whose ``<|tool_call_begin|>`` ends at ``body``; return where reading
        goes on."""
        boundary = _CALL_BOUNDARY.search(text, body)
        limit = boundary.start() if boundary else len(text)
        end = text.find(_CALL_END, body, limit)
        closed = end >= 0
        stop = end if closed else limit
        at_end = not closed and boundary is None  # the text ends inside this call
        resume = end + len(_CALL_END) if closed else limit
        raw = text[start:resume]
        separator = text.find(_ARGUMENT_BEGIN, body, stop)
        if separator < 0:
            if at_end:
                calls.fail("the call was cut off before its arguments", raw)
            else:
                calls.fail(f"no {_ARGUMENT_BEGIN} between the call id and its arguments", raw)
            return resume
        try:
            name, call_id = _name_and_id(text[body:separator])
            arguments, after = self._arguments(text, separator + len(_ARGUMENT_BEGIN), stop)
        except _Problem as problem:
            if at_end and isinstance(problem, _CutOff):
                problem = _cut_off_problem(problem)
            calls.fail(problem, raw)
            return resume
        rest = text[after:stop]
        if rest.strip() and closed:
            line, column = _line_col(text, _skip_space(text, after))
            calls.fail(f"unexpected text after the arguments at line {line}, column {column}", raw)
            return resume
        calls.add(ParsedCall(name, arguments, call_id))
        content.append(rest)  # a call left open: what follows its JSON is text
        return resume

    def _arguments(self, text: str, begin: int, stop: int) -> tuple[dict, int]:
        """The JSON object in ``text[begin:stop]`` and where it ends; ``{}`` when empty."""
        start = _skip_space(text, begin)
        if start >= stop:
            if stop == len(text):
                raise _CutOff("invalid JSON: the arguments are missing")
            return {}, stop
        # A prefix of the text, not a slice: errors give the turn's line and column.
        doc = text[:stop]
        try:
            value, after = _decode(doc, start)
        except _Problem as problem:
            if _json_cut_off(doc, start):
                raise _CutOff(str(problem)) from None
            raise
        return _arguments(value, "arguments"), after

    def _stray_arguments(self, calls: _Calls, text: str, start: int, pos: int) -> int:
        """An ``<|tool_call_argument_begin|>`` outside a call: the call's id is lost."""
        boundary = _CALL_BOUNDARY.search(text, pos)
        limit = boundary.start() if boundary else len(text)
        end = text.find(_CALL_END, pos, limit)
        resume = end + len(_CALL_END) if end >= 0 else limit
        line_start = text.rfind("\n", 0, start) + 1
        calls.fail(
            f"{_ARGUMENT_BEGIN} without a {_CALL_BEGIN} before it (the call has no id)",
            text[line_start:resume],
        )
        return resume

    def render(self, calls: Sequence[ParsedCall], content: str = "") -> str:
        """Kimi-K2's chat-template layout: content, then the section, no separators. A call
        whose id is not ``[functions.]NAME:IDX`` for its own name gets ``functions.NAME:i``
        (``i`` its position in ``calls``; the model counts calls over the whole conversation,
        which a single turn cannot know)."""
        if not calls:
            return content.strip()
        blocks = []
        for index, call in enumerate(calls):
            call_id = call.id if _names(call.id, call.name) else f"functions.{call.name}:{index}"
            arguments = _dumps(call.arguments)
            blocks.append(f"{_CALL_BEGIN}{call_id}{_ARGUMENT_BEGIN}{arguments}{_CALL_END}")
        return f"{content.strip()}{_SECTION_BEGIN}{''.join(blocks)}{_SECTION_END}"


class _CutOff(_Problem):
    """The arguments' JSON is still open where the call's text stops."""


def _name_and_id(written: str) -> tuple[str, str]:
    """The function name and the call id from the text between the call's markers."""
    call_id = written.strip()
    match = _CALL_ID.fullmatch(call_id)
    if match is None:
        shown = call_id if len(call_id) <= 80 else call_id[:80] + "..."
        raise _Problem(
            f"call id {shown!r} is not of the form functions.NAME:INDEX, so it names no function"
        )
    return _check_name(match.group("name")), call_id


def _names(call_id: str | None, name: str) -> bool:
    """Whether ``call_id`` is a Kimi call id for the function ``name``."""
    if call_id is None or not NAME_PATTERN.fullmatch(name):
        return False
    match = _CALL_ID.fullmatch(call_id)
    return match is not None and match.group("name") == name
