"""MiniMax: M2 (M2, M2.1, M2.5) XML calls, ``<minimax:tool_call><invoke name=...>``, and M1's
``<tool_calls>`` block of JSON lines.

Sources for the layouts: MiniMax-M2's tool-calling guide (github.com/MiniMax-AI/MiniMax-M2,
``docs/tool_calling_guide.md``) and chat template; vLLM's ``minimax_m2`` and ``minimax`` tool
parsers and their tests (``tests/tool_use/test_minimax_m2_tool_parser.py``,
``tests/tool_use/test_minimax_tool_parser.py``); MiniMax-M1's ``docs/function_call_guide.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from rlenv.tools.parsers._base import (
    ParsedCall,
    ParsedTurn,
    _Calls,
    _check_name,
    _dumps,
    _json_cut_off,
    _Parser,
    _Problem,
    _read_call,
    _skip_space,
    _typed_value,
)

# --- MiniMax-M2 --------------------------------------------------------------------------------

_M2_OPEN, _M2_CLOSE = "<minimax:tool_call>", "</minimax:tool_call>"
_INVOKE_END, _PARAMETER_END = "</invoke>", "</parameter>"
# The name may be double-quoted (what the template writes), single-quoted or bare; models also
# echo other attributes (description="...", type="string") after it (vLLM issue #32827).
_NAME_ATTRIBUTE = r"""\s+name\s*=\s*(?:"([^"\n]{0,200})"|'([^'\n]{0,200})'|([^\s"'>/]{1,200}))"""
_INVOKE = re.compile(rf"<invoke{_NAME_ATTRIBUTE}[^>\n]*>")
_PARAMETER = re.compile(rf"<parameter{_NAME_ATTRIBUTE}[^>\n]*>")
_INVOKE_START = re.compile(r"<invoke\b")
_PARAMETER_START = re.compile(r"<parameter\b")


def _attribute(match: re.Match[str]) -> str:
    return next(group for group in match.groups() if group is not None).strip()


class MiniMaxM2Parser(_Parser):
    """MiniMax-M2 (and M2.1, M2.5): a ``<minimax:tool_call>`` block of ``<invoke>`` elements.

    ::

        <minimax:tool_call>
        <invoke name="get_weather">
        <parameter name="city">Paris</parameter>
        <parameter name="days">3</parameter>
        </invoke>
        <invoke name="get_time">
        <parameter name="zone">CET</parameter>
        </invoke>
        </minimax:tool_call>

    Several ``<invoke>`` in one block (or several blocks) are parallel calls, in order. Names
    may be double-quoted, single-quoted or bare, and other attributes after the name are
    ignored (models echo a ``description``). Text outside the blocks is the content.

    Values are text, as in Qwen3-Coder's XML: with the tools' JSON schemas
    (``parse(text, tools=...)``) each is typed by its parameter's schema (a ``string`` stays
    text even when it reads as JSON; ``integer``, ``number``, ``boolean``, ``object``, ``array``
    and ``null`` are read as JSON; a value the schema refuses stays text for the tool's argument
    validation to report); without a schema a value that reads as JSON is JSON, else text.
    Space around a value is not the value's: it is stripped, as MiniMax's own reference parser
    and vLLM's do (the template writes values flush against the tags, so a model trained on it
    puts space there only by accident), and so a string cannot start or end with space.

    Cut-off policy: an ``<invoke>`` closed by ``</invoke>`` is read even when
    ``</minimax:tool_call>`` is missing (generation stopped, the stop token stripped), and so is
    one whose ``</invoke>`` is left out before the block's ``</minimax:tool_call>``; an
    ``<invoke>`` the text ends inside is an error saying it was cut off, never a partial call.
    Malformed blocks (no ``<invoke>``, no name, text between the elements, a parameter given
    twice) are errors; calls before them in the block are kept.
    """

    name = "minimax_m2"
    reads_schemas = True

    def _parse(
        self, text: str, schemas: Mapping[str, Mapping[str, Any]] | None = None
    ) -> ParsedTurn:
        calls, content, pos = _Calls(), [], 0
        while (start := text.find(_M2_OPEN, pos)) >= 0:
            content.append(text[pos:start])
            close = text.find(_M2_CLOSE, start)
            end = close if close >= 0 else len(text)
            if not self._read_block(calls, text, start + len(_M2_OPEN), end, schemas or {}):
                return calls.turn(content)
            pos = end + len(_M2_CLOSE) if close >= 0 else end
        content.append(text[pos:])
        return calls.turn(content)

    def _read_block(
        self,
        calls: _Calls,
        text: str,
        pos: int,
        end: int,
        schemas: Mapping[str, Mapping[str, Any]],
    ) -> bool:
        """Read the ``<invoke>`` elements of ``text[pos:end]``; ``False`` when reading stops
        (the calls overflowed)."""
        at_end, found, block = end == len(text), False, pos
        while (pos := _skip_space(text, pos)) < end:
            if calls.full:
                calls.overflow(text[pos:end])
                return False
            invoke = _INVOKE.match(text, pos, end)
            if invoke is None:
                found = True
                if _INVOKE_START.match(text, pos, end):
                    problem = (
                        "the call was cut off inside its <invoke> tag"
                        if at_end and ">" not in text[pos:end]
                        else 'expected <invoke name="NAME">'
                    )
                else:
                    shown = text[pos:end].strip()[:80]
                    problem = f"unexpected text in the {_M2_OPEN} block: {shown!r}"
                calls.fail(problem, text[pos:end])
                return True
            found = True
            stop = text.find(_INVOKE_END, invoke.end(), end)
            if stop < 0 and at_end:
                calls.fail(f"the call was cut off before {_INVOKE_END}", text[pos:end])
                return True
            if stop < 0:  # </invoke> left out, the block closed: the call ends with the block
                try:
                    calls.add(self._call(invoke, text, end, schemas))
                except _Problem as problem:
                    calls.fail(problem, text[pos:end])
                return True
            try:
                calls.add(self._call(invoke, text, stop, schemas))
            except _Problem as problem:
                calls.fail(problem, text[pos : stop + len(_INVOKE_END)])
            pos = stop + len(_INVOKE_END)
        if not found:
            problem = (
                f"the call was cut off after {_M2_OPEN}"
                if at_end
                else f"empty {_M2_OPEN} block (no <invoke>)"
            )
            calls.fail(problem, text[block - len(_M2_OPEN) : end])
        return True

    @staticmethod
    def _call(
        invoke: re.Match[str], text: str, end: int, schemas: Mapping[str, Mapping[str, Any]]
    ) -> ParsedCall:
        name = _check_name(_attribute(invoke))
        schema = schemas.get(name, {})
        arguments: dict[str, Any] = {}
        pos = invoke.end()
        while (pos := _skip_space(text, pos)) < end:
            parameter = _PARAMETER.match(text, pos, end)
            if parameter is None:
                if _PARAMETER_START.match(text, pos, end):
                    raise _Problem('expected <parameter name="NAME">')
                shown = text[pos:end].strip()[:80]
                raise _Problem(f"unexpected text inside <invoke name={name!r}>: {shown!r}")
            close = text.find(_PARAMETER_END, parameter.end(), end)
            following = _PARAMETER.search(text, parameter.end(), end)
            if close >= 0 and (following is None or close < following.start()):
                value_end, pos = close, close + len(_PARAMETER_END)
            else:  # </parameter> missing: the value runs to the next parameter or </invoke>
                value_end = pos = following.start() if following is not None else end
            key = _attribute(parameter)
            if key in arguments:
                raise _Problem(f"parameter {key!r} is given twice")
            arguments[key] = _typed_value(
                text[parameter.end() : value_end].strip(), schema.get(key)
            )
        return ParsedCall(name, arguments)

    def render(self, calls: Sequence[ParsedCall], content: str = "") -> str:
        """MiniMax-M2's chat-template layout: content, then one block holding an ``<invoke>``
        per call; strings as written (the space around one is not kept: see the class), other
        values as JSON."""
        parts = [content.strip()] if content.strip() else []
        if calls:
            lines = [_M2_OPEN]
            for call in calls:
                lines.append(f'<invoke name="{call.name}">')
                for key, value in call.arguments.items():
                    written = _written(value)
                    lines.append(f'<parameter name="{key}">{written}{_PARAMETER_END}')
                lines.append(_INVOKE_END)
            lines.append(_M2_CLOSE)
            parts.append("\n".join(lines))
        return "\n".join(parts)


def _written(value: Any) -> str:
    return value if isinstance(value, str) else _dumps(value)


# --- MiniMax-M1 --------------------------------------------------------------------------------

_M1_OPEN, _M1_CLOSE = "<tool_calls>", "</tool_calls>"


class MiniMaxM1Parser(_Parser):
    """MiniMax-M1 (and MiniMax-Text-01): a ``<tool_calls>`` block holding one JSON object per
    line, ``{"name": ..., "arguments": {...}}``; several lines are parallel calls.

    ::

        <tool_calls>
        {"name": "get_weather", "arguments": {"city": "Paris"}}
        {"name": "get_time", "arguments": {"zone": "CET"}}
        </tool_calls>

    Text outside the blocks is the content. A line that is not a call object is an error, and
    the lines after it are still read (each call is on its own line). Cut-off policy: a block
    whose JSON objects are complete is read even when ``</tool_calls>`` is missing; an object
    the text ends inside is an error saying it was cut off. A call without ``arguments`` is a
    call with none (vLLM drops it).
    """

    name = "minimax_m1"

    def _parse(self, text: str) -> ParsedTurn:
        calls, content, pos = _Calls(), [], 0
        while (start := text.find(_M1_OPEN, pos)) >= 0:
            content.append(text[pos:start])
            close = text.find(_M1_CLOSE, start)
            end = close if close >= 0 else len(text)
            doc, body = text[:end], _skip_space(text, start + len(_M1_OPEN))
            if body >= end:
                problem = "the call was cut off after" if close < 0 else "empty"
                calls.fail(f"{problem} {_M1_OPEN} block", text[start:end])
            while body < end:
                if calls.full:
                    calls.overflow(text[body:end])
                    return calls.turn(content)
                errors = len(calls.errors)
                if text.startswith("{", body):
                    stop = _read_call(calls, doc, body, end, at_end=close < 0)
                else:
                    shown = text[body:end].split("\n", 1)[0].strip()[:80]
                    calls.fail(f"expected a JSON call object, got {shown!r}", text[body:end])
                if len(calls.errors) > errors:
                    if close < 0 and _json_cut_off(doc, body):
                        return calls.turn(content)  # cut off: nothing follows
                    line_end = text.find("\n", body, end)  # a broken line: on to the next
                    stop = end if line_end < 0 else line_end
                body = _skip_space(text, stop)
            pos = end + len(_M1_CLOSE) if close >= 0 else end
        content.append(text[pos:])
        return calls.turn(content)

    def render(self, calls: Sequence[ParsedCall], content: str = "") -> str:
        """Content, then one ``<tool_calls>`` block with a JSON object per line (M1's
        template layout)."""
        parts = [content.strip()] if content.strip() else []
        if calls:
            lines = [_dumps({"name": call.name, "arguments": call.arguments}) for call in calls]
            parts.append("\n".join([_M1_OPEN, *lines, _M1_CLOSE]))
        return "\n".join(parts)
