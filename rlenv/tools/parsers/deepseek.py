"""DeepSeek V3 / R1 / V3.1 tool-call blocks with their full-width special tokens."""

from __future__ import annotations

import re
from collections.abc import Sequence

from rlenv.tools.parsers._base import (
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
    _skip_space,
)

# --- DeepSeek V3 / R1 / V3.1 --------------------------------------------------------------------

_DS_CALLS_BEGIN = "<\uff5ctool\u2581calls\u2581begin\uff5c>"
_DS_CALLS_END = "<\uff5ctool\u2581calls\u2581end\uff5c>"
_DS_CALL_BEGIN = "<\uff5ctool\u2581call\u2581begin\uff5c>"
_DS_CALL_END = "<\uff5ctool\u2581call\u2581end\uff5c>"
_DS_SEP = "<\uff5ctool\u2581sep\uff5c>"
_DS_FENCED = re.compile(r"\s*([^\s`]{1,200})\s*```(?:json)?\s*\n?(.*?)\n?```\s*\Z", re.DOTALL)
_DS_FENCE_LEFT_OPEN = re.compile(r"\s*([^\s`]{1,200})\s*```(?:json)?\s*\n?(.*?)\s*\Z", re.DOTALL)


class DeepSeekParser(_Parser):
    """DeepSeek's tool-call blocks, written with full-width special tokens (``｜`` and ``▁``).

    - ``deepseek_v3`` (V3, R1): ``<｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME`` then the
      arguments in a fenced ``json`` block, then ``<｜tool▁call▁end｜>``;
    - ``deepseek_v31`` (V3.1): ``<｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{json}<｜tool▁call▁end｜>``.

    Calls sit between ``<｜tool▁calls▁begin｜>`` and ``<｜tool▁calls▁end｜>``; text outside is the
    content. Each parser reads both layouts (a V3 checkpoint fine-tuned on V3.1 data writes
    either); ``render`` writes its own. Cut-off policy: a call whose arguments are complete but
    whose end tokens (``<｜tool▁call▁end｜>``, ``<｜tool▁calls▁end｜>``, V3's closing fence) are
    missing is read (generation stopped, the stop token stripped); a call cut off inside its
    arguments is an error that says so.
    """

    template_arguments = "json"  # its template prints function.arguments as text

    def __init__(self, style: str = "v3") -> None:
        if style not in ("v3", "v31"):
            raise ValueError(f"style must be 'v3' or 'v31', got {style!r}")
        self.style = style
        self.name = "deepseek_v3" if style == "v3" else "deepseek_v31"

    def _parse(self, text: str) -> ParsedTurn:
        calls, content, pos = _Calls(), [], 0
        text = self._sections_without_calls(calls, text)
        while (start := text.find(_DS_CALL_BEGIN, pos)) >= 0:
            content.append(text[pos:start].replace(_DS_CALLS_BEGIN, ""))
            if calls.full:
                calls.overflow(text[start:])
                return calls.turn(content)
            body = start + len(_DS_CALL_BEGIN)
            end = text.find(_DS_CALL_END, body)
            if end < 0:
                # Generation stopped: a complete call without its end token is read, a call
                # cut off inside its arguments is an error.
                rest = text[body:]
                self._read_call(calls, rest.split(_DS_CALLS_END, 1)[0], closed=False)
                content.append(rest.split(_DS_CALLS_END, 1)[1] if _DS_CALLS_END in rest else "")
                return calls.turn(content)
            self._read_call(calls, text[body:end])
            pos = end + len(_DS_CALL_END)
        content.append(text[pos:].replace(_DS_CALLS_END, "").replace(_DS_CALLS_BEGIN, ""))
        return calls.turn(content)

    @staticmethod
    def _sections_without_calls(calls: _Calls, text: str) -> str:
        """A tool-calls section that holds text but no ``<｜tool▁call▁begin｜>`` is an error (its
        markup is broken, or generation stopped before the first call began), never content and
        never a silent drop. Returns ``text`` without those sections."""
        pos, kept = 0, []
        while (begin := text.find(_DS_CALLS_BEGIN, pos)) >= 0:
            inner = begin + len(_DS_CALLS_BEGIN)
            end = text.find(_DS_CALLS_END, inner)
            stop = len(text) if end < 0 else end + len(_DS_CALLS_END)
            section = text[inner : len(text) if end < 0 else end]
            if _DS_CALL_BEGIN in section or not section.strip():
                kept.append(text[pos:stop])
            else:
                kept.append(text[pos:begin])
                problem = (
                    "the call was cut off before <｜tool▁call▁begin｜>"
                    if end < 0
                    else "the tool-calls section holds no <｜tool▁call▁begin｜> call"
                )
                calls.fail(problem, text[begin:stop])
            pos = stop
        kept.append(text[pos:])
        return "".join(kept)

    def _read_call(self, calls: _Calls, block: str, closed: bool = True) -> None:
        head, sep, tail = block.partition(_DS_SEP)
        if not sep:
            if closed:
                calls.fail("no <｜tool▁sep｜> between the function and its arguments", block)
            else:
                calls.fail("the call was cut off before its arguments", block)
            return
        fenced = _DS_FENCED.match(tail) or (None if closed else _DS_FENCE_LEFT_OPEN.match(tail))
        if head.strip() == "function" and fenced:  # V3 / R1
            name, arguments = fenced.group(1), fenced.group(2)
        else:  # V3.1
            name, arguments = head.strip(), tail
        try:
            value, stop = _decode(arguments, _skip_space(arguments, 0))
            if arguments[stop:].strip():
                raise _Problem("unexpected text after the arguments' JSON object")
            calls.add(ParsedCall(_check_name(name), _arguments(value, "arguments")))
        except _Problem as problem:
            if not closed and _json_cut_off(arguments, _skip_space(arguments, 0)):
                problem = _cut_off_problem(problem)
            calls.fail(problem, block)

    def render(self, calls: Sequence[ParsedCall], content: str = "") -> str:
        """Content, then the calls block in this parser's layout."""
        if not calls:
            return content.strip()
        blocks = []
        for call in calls:
            arguments = _dumps(call.arguments)
            if self.style == "v3":
                body = f"function{_DS_SEP}{call.name}\n```json\n{arguments}\n```"
            else:
                body = f"{call.name}{_DS_SEP}{arguments}"
            blocks.append(f"{_DS_CALL_BEGIN}{body}{_DS_CALL_END}")
        return f"{content.strip()}{_DS_CALLS_BEGIN}{''.join(blocks)}{_DS_CALLS_END}"

    def __repr__(self) -> str:
        return f"DeepSeekParser(style={self.style!r})"
