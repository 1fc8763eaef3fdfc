"""Qwen3-Coder and Qwen3.5+: ``<tool_call><function=NAME><parameter=ARG>value</parameter>...``."""

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
    _Parser,
    _Problem,
    _skip_space,
    _typed_value,
)

# --- Qwen3-Coder / Qwen3.5 XML ----------------------------------------------------------------

_XML_FUNCTION = re.compile(r"\s*<function=([^>\n]{1,200})>")
_UNWRAPPED_FUNCTION = re.compile(r"<function=([^>\n]{1,200})>\s*(?=<parameter=)")
_XML_PARAMETER = re.compile(r"<parameter=([^>\n]{1,200})>")


class Qwen3XmlParser(_Parser):
    """Qwen3-Coder and Qwen3.5+: one ``<tool_call>`` block per call, its arguments as XML.

    ``<tool_call>\\n<function=NAME>\\n<parameter=ARG>\\nvalue\\n</parameter>\\n</function>\\n</tool_call>``.
    Values are raw text. With the tools' JSON schemas (``parse(text, tools=...)``) each value
    is typed by its parameter's schema: a ``string`` stays text even when it looks like JSON,
    ``integer``/``number``/``boolean``/``object``/``array``/``null`` are read as JSON. Without a
    schema a value that reads as JSON is JSON, else text. Cut-off policy: a block whose
    ``</function>`` is there but whose ``</tool_call>`` is missing (generation stopped, the stop
    token stripped) is read; a block cut off before ``</function>`` is an error that says so,
    never a call (a cut-off value is not the value the model meant). A turn with no
    ``<tool_call>`` block of this format may hold blocks without the wrapper: a
    ``<function=NAME>`` that opens with a ``<parameter=`` is read the same way. A
    ``<tool_call>`` block holding JSON is Hermes's, not this format's: it is left as content.
    """

    name = "qwen3_xml"
    reads_schemas = True
    open_tag = "<tool_call>"
    close_tag = "</tool_call>"

    def _parse(
        self, text: str, schemas: Mapping[str, Mapping[str, Any]] | None = None
    ) -> ParsedTurn:
        calls, content, pos = _Calls(), [], 0
        while (start := text.find(self.open_tag, pos)) >= 0:
            if not _XML_FUNCTION.match(text, start + len(self.open_tag)):
                content.append(text[pos : start + len(self.open_tag)])  # not this format's
                pos = start + len(self.open_tag)
                continue
            content.append(text[pos:start])
            if calls.full:
                calls.overflow(text[start:])
                return calls.turn(content)
            body = start + len(self.open_tag)
            close = text.find(self.close_tag, body)
            function_end = text.find("</function>", body)
            if close >= 0 and (function_end < 0 or close < function_end):
                self._read_block(calls, text[body:close], schemas or {})  # no </function>
                pos = close + len(self.close_tag)
            elif function_end >= 0:
                # </tool_call> may be missing: generation stopped after the call (engines strip
                # the stop token). The call itself is complete, so it is read.
                pos = function_end + len("</function>")
                self._read_block(calls, text[body:pos], schemas or {})
                pos = _skip_space(text, pos)
                pos += len(self.close_tag) if text.startswith(self.close_tag, pos) else 0
            else:
                calls.fail("the call was cut off before </function>", text[start:])
                return calls.turn(content)
        content.append(text[pos:])
        if not (calls.calls or calls.errors):
            return self._parse_unwrapped(text, schemas or {})
        return calls.turn(content)

    def _parse_unwrapped(self, text: str, schemas: Mapping[str, Mapping[str, Any]]) -> ParsedTurn:
        """Blocks written without the ``<tool_call>`` wrapper (SGLang's Qwen3-Coder tests have
        them): a ``<function=NAME>`` whose first element is a ``<parameter=``, so that Llama's
        ``<function=NAME>{json}</function>`` is left to ``llama3_json``."""
        calls, content, pos = _Calls(), [], 0
        while (match := _UNWRAPPED_FUNCTION.search(text, pos)) is not None:
            content.append(text[pos : match.start()])
            if calls.full:
                calls.overflow(text[match.start() :])
                return calls.turn(content)
            end = text.find("</function>", match.end())
            if end < 0:
                calls.fail("the call was cut off before </function>", text[match.start() :])
                return calls.turn(content)
            pos = end + len("</function>")
            self._read_block(calls, text[match.start() : pos], schemas)
        content.append(text[pos:])
        return calls.turn(content)

    def _read_block(
        self, calls: _Calls, block: str, schemas: Mapping[str, Mapping[str, Any]]
    ) -> None:
        match = _XML_FUNCTION.match(block)
        end = block.find("</function>")
        if match is None or end < 0:
            calls.fail("expected <function=NAME>...</function>", block)
            return
        try:
            name = _check_name(match.group(1).strip())
        except _Problem as problem:
            calls.fail(problem, block)
            return
        schema = schemas.get(name, {})
        arguments: dict[str, Any] = {}
        pos = match.end()
        while (parameter := _XML_PARAMETER.search(block, pos, end)) is not None:
            close = block.find("</parameter>", parameter.end(), end)
            following = _XML_PARAMETER.search(block, parameter.end(), end)
            stop = (
                close
                if close >= 0 and (following is None or close < following.start())
                else (following.start() if following is not None else end)
            )
            key = parameter.group(1).strip()
            if key in arguments:
                calls.fail(f"parameter {key!r} is given twice", block)
                return
            arguments[key] = _typed_value(block[parameter.end() : stop], schema.get(key))
            pos = stop + (len("</parameter>") if stop == close else 0)
        if block[pos:end].strip():
            calls.fail(
                f"unexpected text inside <function={name}>: {block[pos:end].strip()[:80]!r}", block
            )
            return
        calls.add(ParsedCall(name, arguments))

    def render(self, calls: Sequence[ParsedCall], content: str = "") -> str:
        """Qwen3-Coder's chat-template layout: content, then one block per call; strings as
        written, other values as JSON."""
        parts = [content.strip()] if content.strip() else []
        for call in calls:
            lines = [self.open_tag, f"<function={call.name}>"]
            for key, value in call.arguments.items():
                written = value if isinstance(value, str) else _dumps(value)
                lines += [f"<parameter={key}>", written, "</parameter>"]
            lines += ["</function>", self.close_tag]
            parts.append("\n".join(lines))
        return "\n".join(parts)
