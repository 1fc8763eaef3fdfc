"""GLM-4.5, 4.6 and 4.7: ``<tool_call>NAME`` then ``<arg_key>``/``<arg_value>`` pairs."""

from __future__ import annotations

import json
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

# --- GLM-4.5 / 4.6 / 4.7 ------------------------------------------------------------------------

_OPEN, _CLOSE = "<tool_call>", "</tool_call>"
_KEY_OPEN, _KEY_CLOSE = "<arg_key>", "</arg_key>"
_VALUE_OPEN, _VALUE_CLOSE = "<arg_value>", "</arg_value>"
# The function name: the rest of the line after <tool_call>, up to the first tag.
_NAME_LINE = re.compile(r"[ \t\r\n]*([^\n<]{0,200})[ \t\r]*")
# Blocks that share the tag but are another format's: Hermes's JSON (bare, fenced or a Python
# dict) and Qwen3-Coder's <function=NAME> XML.
_ESCAPED_LAYOUT = re.compile(r"\\n\s*<arg_(?:key|value)>|</arg_(?:key|value)>\s*\\n")
"""A block written as the inside of a JSON string: ``\\n`` between the tags, ``\\"`` in values
(GLM-4.6's raw responses as SGLang's tests have them)."""
_OTHER_FORMAT = re.compile(r"\s*(?:[{\[`]|<function=)")
_ONE_WORD = re.compile(r"\S*")


class Glm45Parser(_Parser):
    """GLM-4.5 and GLM-4.6 (Z.ai), and GLM-4.7's compact layout: one ``<tool_call>`` block per
    call, the function name on its first line, then the arguments as tag pairs.

    ``<tool_call>get_weather\\n<arg_key>city</arg_key>\\n<arg_value>Paris</arg_value>\\n
    </tool_call>`` (GLM-4.5/4.6); GLM-4.7 writes the same without the newlines
    (``<tool_call>get_weather<arg_key>city</arg_key><arg_value>Paris</arg_value></tool_call>``),
    and a call without arguments is ``<tool_call>NAME</tool_call>``. Values are text: GLM's chat
    template writes a string as it is and any other value as JSON. With the tools' JSON schemas
    (``parse(text, tools=...)``) each value is typed by its parameter's schema, as in
    :class:`Qwen3XmlParser` (a ``string`` stays text even when it reads as JSON); without a
    schema a value that reads as JSON is JSON, else text. A value is kept exactly as written
    (GLM pads nothing inside ``<arg_value>``), newlines at its ends included.

    Cut-off policy: a block whose last ``</arg_value>`` is there but whose ``</tool_call>`` is
    missing (generation stopped) is read; a block the text ends inside (in its name, a key or a
    value, or right after the name, where arguments may follow) is an error that says it was cut
    off. Malformed blocks are errors: no name or an invalid one, a key without its value, a key
    given twice, text between the pairs.

    ``<tool_call>`` is also Hermes's tag and Qwen3-Coder's: a block holding JSON (bare, fenced
    or a Python-style dict) or ``<function=...>`` is left in the content for those parsers, and
    so is a block whose first line is followed by no ``<arg_key>`` and is not a single word
    before ``</tool_call>`` or the end of the text (prose that mentions the tag).
    """

    name = "glm45"
    reads_schemas = True

    def _parse(
        self, text: str, schemas: Mapping[str, Mapping[str, Any]] | None = None
    ) -> ParsedTurn:
        calls, content, pos, search = _Calls(), [], 0, 0
        if _ESCAPED_LAYOUT.search(text):
            text = _unescaped_blocks(text)
        while (start := text.find(_OPEN, search)) >= 0:
            name_line = _name_line(text, start + len(_OPEN))
            if name_line is None:  # another format's block: left in the content as it is
                search = start + len(_OPEN)
                continue
            content.append(text[pos:start])
            if calls.full:
                calls.overflow(text[start:])
                return calls.turn(content)
            pos = search = self._read_block(calls, text, start, name_line, schemas or {})
        content.append(text[pos:])
        return calls.turn(content)

    def _read_block(
        self,
        calls: _Calls,
        text: str,
        start: int,
        name_line: re.Match[str],
        schemas: Mapping[str, Mapping[str, Any]],
    ) -> int:
        """Read the block opened at ``start``; return where reading goes on."""
        try:
            written = name_line.group(1).strip()
            cut_off = not text[name_line.end() :].strip()
            if not written and cut_off:
                raise _Problem("the block was cut off before the function name")
            if not written:
                raise _Problem(f"no function name after {_OPEN}")
            name = _check_name(written)
            if cut_off:  # arguments may have followed
                raise _Problem("the block was cut off after the function name")
            arguments, pos = self._read_pairs(text, name_line.end(), schemas.get(name, {}))
        except _Problem as problem:
            resume = _block_end(text, start + len(_OPEN))
            calls.fail(problem, text[start:resume])
            return resume
        calls.add(ParsedCall(name, arguments))
        return pos

    def _read_pairs(
        self, text: str, pos: int, schema: Mapping[str, Any]
    ) -> tuple[dict[str, Any], int]:
        """The ``<arg_key>``/``<arg_value>`` pairs from ``pos`` to ``</tool_call>`` (or to where
        the text or the next block begins) and where the block ends."""
        arguments: dict[str, Any] = {}
        while True:
            pos = _skip_space(text, pos)
            if text.startswith(_CLOSE, pos):
                return arguments, pos + len(_CLOSE)
            if pos == len(text) or text.startswith(_OPEN, pos):
                return arguments, pos  # </tool_call> missing: the pairs written are complete
            if not text.startswith(_KEY_OPEN, pos):
                shown = text[pos : pos + 80].split("\n")[0].split(_CLOSE)[0]
                raise _Problem(f"expected {_KEY_OPEN} or {_CLOSE}, found {shown!r}")
            pos += len(_KEY_OPEN)
            key_end, value_open = text.find(_KEY_CLOSE, pos), text.find(_VALUE_OPEN, pos)
            if value_open >= 0 and (key_end < 0 or value_open < key_end):
                key = text[pos:value_open].strip()
                raise _Problem(f"{_KEY_OPEN} {key!r} has no {_KEY_CLOSE}")
            key, pos = _tagged(text, pos, _KEY_CLOSE, "an argument name")
            key = key.strip()
            if not key:
                raise _Problem(f"empty argument name in {_KEY_OPEN}{_KEY_CLOSE}")
            if key in arguments:
                raise _Problem(f"argument {key!r} is given twice")
            pos = _skip_space(text, pos)
            if pos == len(text):
                raise _Problem(f"the block was cut off before the value of {key!r}")
            if not text.startswith(_VALUE_OPEN, pos):
                raise _Problem(f"expected {_VALUE_OPEN} after {_KEY_OPEN}{key}{_KEY_CLOSE}")
            value, pos = _tagged(
                text, pos + len(_VALUE_OPEN), _VALUE_CLOSE, f"the value of {key!r}"
            )
            # _typed_value trims one newline at each end (Qwen's padding); GLM pads nothing, so
            # the value is handed over with one added at each end and comes back as written.
            arguments[key] = _typed_value(f"\n{value}\n", schema.get(key))

    def render(self, calls: Sequence[ParsedCall], content: str = "") -> str:
        """GLM-4.5/4.6's chat-template layout: content, then one block per call on its own
        lines; strings as written, other values as JSON."""
        parts = [content.strip()] if content.strip() else []
        for call in calls:
            lines = [f"{_OPEN}{call.name}"]
            for key, value in call.arguments.items():
                written = value if isinstance(value, str) else _dumps(value)
                lines += [f"{_KEY_OPEN}{key}{_KEY_CLOSE}", f"{_VALUE_OPEN}{written}{_VALUE_CLOSE}"]
            lines.append(_CLOSE)
            parts.append("\n".join(lines))
        return "\n".join(parts)


def _name_line(text: str, body: int) -> re.Match[str] | None:
    """The name line of the block whose ``<tool_call>`` ends at ``body``, or ``None`` when the
    block is not this format's: JSON or ``<function=`` (Hermes, Qwen3-Coder), or a first line
    followed by neither ``<arg_key>`` nor (for a single word: a call without arguments)
    ``</tool_call>`` or, right after the tag, the end of the text."""
    if _OTHER_FORMAT.match(text, body):
        return None
    name_line = _NAME_LINE.match(text, body)
    assert name_line is not None  # the pattern matches the empty string
    after = _skip_space(text, name_line.end())
    if text.startswith(_KEY_OPEN, after):
        return name_line
    if not _ONE_WORD.fullmatch(name_line.group(1).strip()):
        return None
    if text.startswith(_CLOSE, after):
        return name_line
    # At the end of the text: a call cut off in or after its name (GLM writes the name right
    # after the tag), not prose that mentions the tag ("wrap it in <tool_call> tags").
    at_end = after == len(text) and not text[body : body + 1].isspace()
    return name_line if at_end or body == len(text) else None


def _tagged(text: str, pos: int, close: str, what: str) -> tuple[str, int]:
    """The text from ``pos`` to ``close`` and where ``close`` ends."""
    end = text.find(close, pos)
    block_end = text.find(_CLOSE, pos, None if end < 0 else end)
    if end < 0 or (block_end >= 0 and text.find(_OPEN, block_end, end) >= 0):
        # Not closed before the next block begins: a value may hold "</tool_call>", but a
        # "</tool_call>" then a "<tool_call>" is the next block, not text of this one.
        if end < 0 and block_end < 0 and text.find(_OPEN, pos) < 0:
            raise _Problem(f"the block was cut off inside {what}")
        raise _Problem(f"{what} has no {close}")
    return text[pos:end], end + len(close)


def _unescaped_blocks(text: str) -> str:
    """``text`` with each block written JSON-escaped (``_ESCAPED_LAYOUT``) read as the JSON
    string it is, so ``todo_write\\n<arg_key>`` is the name ``todo_write`` and ``[{\\"id\\": 1}]``
    the list it encodes. A block that does not decode is left as written (and reported)."""
    pieces, pos = [], 0
    while (start := text.find(_OPEN, pos)) >= 0:
        body = start + len(_OPEN)
        end = _block_end(text, body)
        block = text[body:end]
        inner = block.removesuffix(_CLOSE)
        if _ESCAPED_LAYOUT.search(inner):
            try:
                inner = json.loads(f'"{inner}"', strict=False)
                block = inner + block[len(block.removesuffix(_CLOSE)) :]
            except ValueError:
                pass
        pieces += [text[pos:body], block]
        pos = end
    pieces.append(text[pos:])
    return "".join(pieces)


def _block_end(text: str, body: int) -> int:
    """Where a malformed block ends: after its ``</tool_call>``, else where the next block
    starts, else at the end of the text."""
    close = text.find(_CLOSE, body)
    following = text.find(_OPEN, body)
    if close >= 0 and (following < 0 or close < following):
        return close + len(_CLOSE)
    return following if following >= 0 else len(text)
