"""Tool-call parsers: turn the text a model emits into :class:`ParsedCall` objects.

Each parser handles one format real models are trained on (see ``docs/tool-call-formats.md``):

============== ===============================================================================
``hermes``     Hermes / Qwen: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks
``llama3_json`` Llama 3.1: ``<|python_tag|>{"name": ..., "parameters": {...}}``, ``;`` between
               calls; also ``<function=name>{...}</function>``
``mistral``    ``[TOOL_CALLS][{"name": ..., "arguments": {...}}]`` and
               ``[TOOL_CALLS]name[CALL_ID]id[ARGS]{...}``
``pythonic``   Llama 3.2+: ``[f(a=1), g(b="x")]`` (read with :mod:`ast`, never evaluated)
``json``       plain JSON (the whole text or a fenced block): an object or a list of objects
``auto``       tries ``hermes``, ``mistral``, ``llama3_json``, ``json`` in turn
============== ===============================================================================

Parsing never raises on model text. A malformed call becomes a :class:`CallError` whose message
names the call (1-based) and, for broken JSON, the line and column in the whole turn:

>>> turn = get_parser("hermes").parse('Checking.<tool_call>{"name": "add", "arguments": {"a": 1}}')
>>> turn.content, turn.calls
('Checking.', [ParsedCall(name='add', arguments={'a': 1}, id=None)])

Work is bounded: a turn over :data:`MAX_TEXT_CHARS` characters is not parsed, at most
:data:`MAX_CALLS` calls are read, and arguments nested deeper than :data:`MAX_DEPTH` are refused.
"""

from __future__ import annotations

import ast
import json
import keyword
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from rlenv.chat import message_text
from rlenv.errors import RLEnvError

__all__ = [
    "MAX_CALLS",
    "MAX_DEPTH",
    "MAX_TEXT_CHARS",
    "NAME_PATTERN",
    "AutoParser",
    "CallError",
    "HermesParser",
    "JsonParser",
    "Llama3JsonParser",
    "MistralParser",
    "ParsedCall",
    "ParsedTurn",
    "ParserRegistrationError",
    "PythonicParser",
    "ToolCallParser",
    "UnknownParserError",
    "as_assistant_message",
    "get_parser",
    "list_parsers",
    "parse_message",
    "register_parser",
]

MAX_TEXT_CHARS = 200_000
"""A turn longer than this is not parsed: one :class:`CallError`, no calls."""
MAX_CALLS = 64
"""At most this many calls are read from one turn; the rest become one :class:`CallError`."""
MAX_DEPTH = 100
"""Arguments nested deeper than this (objects and lists) are refused."""
NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
"""What a function name must fully match (OpenAI's rule, plus ``.`` for namespaced tools)."""

_RAW_CHARS = 500


# --- Results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedCall:
    """One well-formed call read from a model's turn: the function's name and its arguments as
    a JSON object.

    Not to be confused with :class:`rlenv.chat.ToolCall`, the OpenAI-format ``tool_calls`` entry
    of an assistant message (:func:`as_assistant_message` turns ``ParsedCall`` objects into
    those). It used to be named ``ToolCall`` as well; that name still imports from here and from
    :mod:`rlenv.tools`, with a ``DeprecationWarning``.
    """

    name: str
    arguments: dict[str, Any]
    """The parsed JSON object; ``{}`` when the call has none."""
    id: str | None = None
    """The call id when the format carries one (OpenAI, Mistral); ``None`` otherwise."""


@dataclass(frozen=True)
class CallError:
    """A malformed call: what was wrong and where, and the offending text."""

    message: str
    """E.g. ``"tool call 2: invalid JSON at line 1, column 17: Expecting ',' delimiter"``."""
    raw: str
    """The offending text, at most 500 characters."""


@dataclass(frozen=True)
class ParsedTurn:
    """A model turn split into its text and its tool calls."""

    content: str
    """The text outside the tool calls, stripped."""
    calls: list[ParsedCall] = field(default_factory=list)
    """The well-formed calls, in the order they appear."""
    errors: list[CallError] = field(default_factory=list)
    """The malformed calls (parsing never raises)."""


@runtime_checkable
class ToolCallParser(Protocol):
    """What a parser provides. Register your own with :func:`register_parser`."""

    name: str

    def parse(self, text: str) -> ParsedTurn:
        """Split a model's text into content and calls; must never raise."""
        ...

    def render(self, calls: Sequence[ParsedCall], content: str = "") -> str:
        """The text a model using this format emits for ``content`` followed by ``calls``."""
        ...


class UnknownParserError(RLEnvError, KeyError):
    """No tool-call parser is registered under that name; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError's str() adds quotes around the message
        return str(self.args[0]) if self.args else ""


class ParserRegistrationError(RLEnvError, ValueError):
    """``register_parser`` was given something that is not a parser, or a taken name."""


# --- Shared machinery --------------------------------------------------------------------------


class _Problem(Exception):
    """Why one call is malformed (internal; becomes a CallError with the call's index)."""


class _Calls:
    """Collects calls and errors in order, numbering them and enforcing MAX_CALLS."""

    def __init__(self) -> None:
        self.calls: list[ParsedCall] = []
        self.errors: list[CallError] = []
        self.count = 0
        self.overflowed = False

    @property
    def index(self) -> int:
        """The 1-based number the next call will get."""
        return self.count + 1

    @property
    def full(self) -> bool:
        return self.count >= MAX_CALLS

    def add(self, item: ParsedCall | CallError) -> None:
        self.count += 1
        if isinstance(item, ParsedCall):
            self.calls.append(item)
        else:
            self.errors.append(item)

    def fail(self, problem: str | _Problem, raw: str) -> None:
        """Record call number ``index`` as malformed."""
        self.add(CallError(f"tool call {self.index}: {problem}", raw[:_RAW_CHARS]))

    def overflow(self, raw: str) -> None:
        """There are more calls than MAX_CALLS; record that once and read no more."""
        if not self.overflowed:
            self.overflowed = True
            self.errors.append(
                CallError(
                    f"more than {MAX_CALLS} tool calls in one turn; "
                    f"the calls after the {MAX_CALLS}th were ignored",
                    raw[:_RAW_CHARS],
                )
            )

    def turn(self, content: str | Sequence[str]) -> ParsedTurn:
        if not isinstance(content, str):
            content = "\n".join(piece.strip() for piece in content if piece.strip())
        return ParsedTurn(content.strip(), self.calls, self.errors)


def _reject_constant(constant: str) -> Any:
    raise _Problem(f"invalid JSON: {constant} is not allowed (JSON has no NaN or Infinity)")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_WHITESPACE = re.compile(r"\s*")
_LOOKS_LIKE_CALL = re.compile(r"""["'](?:name|function)["']\s*:""")


def _skip_space(text: str, pos: int) -> int:
    return _WHITESPACE.match(text, pos).end()  # type: ignore[union-attr]  # \s* always matches


def _line_col(text: str, pos: int) -> tuple[int, int]:
    """1-based line and column of ``pos`` in ``text``, counted the way ``json`` counts them."""
    line = text.count("\n", 0, pos) + 1
    return line, pos - text.rfind("\n", 0, pos)


def _decode(doc: str, pos: int) -> tuple[Any, int]:
    """Decode one JSON value starting at ``doc[pos]``; positions in errors are within ``doc``.

    Callers pass the whole turn text (or a prefix of it), so line and column are the turn's.
    """
    try:
        return _DECODER.raw_decode(doc, pos)
    except json.JSONDecodeError as error:
        raise _Problem(
            f"invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    except RecursionError:
        raise _Problem(f"invalid JSON: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as error:  # e.g. an integer with more than 4300 digits
        raise _Problem(f"invalid JSON: {error}") from None


def _kind(value: Any) -> str:
    """How a JSON value's type reads in a message: 'an object', 'a list', ..."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if value is None:
        return "null"
    return type(value).__name__


def _too_deep(value: Any) -> bool:
    """Whether ``value`` nests objects and lists more than MAX_DEPTH levels (iteratively)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > MAX_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _check_name(name: Any) -> str:
    if not isinstance(name, str):
        raise _Problem(f"'name' must be a string, got {_kind(name)}")
    if not NAME_PATTERN.fullmatch(name):
        shown = name if len(name) <= 80 else name[:80] + "..."
        raise _Problem(
            f"invalid function name {shown!r}: use 1 to 64 letters, digits, '_', '.' or '-', "
            "starting with a letter or '_'"
        )
    return name


def _arguments(value: Any, key: str) -> dict[str, Any]:
    """The arguments as a JSON object; a string holding an object (double-encoded) is decoded."""
    if value is None:
        return {}
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return {}
        if text[0] not in "{[":
            raise _Problem(f"'{key}' must be a JSON object, got a string")
        try:
            value = _DECODER.decode(text)
        except json.JSONDecodeError as error:
            raise _Problem(
                f"'{key}' is a string holding invalid JSON (line {error.lineno}, "
                f"column {error.colno} of the string): {error.msg}"
            ) from None
        except RecursionError:
            raise _Problem(f"'{key}' is nested deeper than {MAX_DEPTH} levels") from None
        except ValueError as error:
            raise _Problem(f"'{key}' is a string holding invalid JSON: {error}") from None
        if not isinstance(value, dict):
            raise _Problem(f"'{key}' must be a JSON object, got a string holding {_kind(value)}")
    elif not isinstance(value, dict):
        raise _Problem(f"'{key}' must be a JSON object, got {_kind(value)}")
    if _too_deep(value):
        raise _Problem(f"'{key}' is nested deeper than {MAX_DEPTH} levels")
    return value


_ARGUMENT_KEYS = ("arguments", "parameters")


def _call_from_object(value: Any) -> ParsedCall:
    """A ParsedCall from a decoded ``{"name": ..., "arguments": {...}}`` object.

    Also accepted: ``"parameters"`` for ``"arguments"`` (Llama), an ``"id"``, and the OpenAI
    nesting ``{"type": "function", "function": {"name", "arguments"}}``.
    """
    if not isinstance(value, dict):
        raise _Problem(f"expected a JSON object with 'name' and 'arguments', got {_kind(value)}")
    call_id = value.get("id")
    if "name" not in value and isinstance(value.get("function"), dict):
        value = value["function"]
    if "name" not in value:
        keys = ", ".join(repr(key) for key in list(value)[:5]) or "none"
        raise _Problem(f"missing 'name' (the function to call); keys found: {keys}")
    name = _check_name(value["name"])
    arguments: dict[str, Any] = {}
    for key in _ARGUMENT_KEYS:
        if key in value:
            arguments = _arguments(value[key], key)
            break
    return ParsedCall(name, arguments, call_id if isinstance(call_id, str) else None)


def _is_call_like(value: Any) -> bool:
    """Whether a JSON value is meant as a call (so a plain JSON answer is left as content)."""
    if isinstance(value, list):
        return any(_is_call_like(item) for item in value if isinstance(item, dict))
    return isinstance(value, dict) and any(
        key in value for key in ("name", "function", *_ARGUMENT_KEYS)
    )


def _read_call(calls: _Calls, doc: str, pos: int, end: int | None = None) -> int:
    """Decode one call object at ``doc[pos]`` into ``calls``; returns where it ended.

    On broken JSON the error is recorded and ``len(doc)`` returned (the rest cannot be read).
    """
    try:
        value, stop = _decode(doc, pos)
        calls.add(_call_from_object(value))
    except _Problem as problem:
        calls.fail(problem, doc[pos:end])
        return len(doc)
    return stop


def _read_call_list(calls: _Calls, doc: str, pos: int) -> int:
    """Read a JSON list of call objects starting at ``doc[pos] == '['``; returns its end.

    Elements are decoded one by one so each error names its call and its position. A list cut
    off at the end of ``doc`` (a truncated generation) keeps the calls read so far.
    """
    pos = _skip_space(doc, pos + 1)
    if doc.startswith("]", pos):
        return pos + 1
    while pos < len(doc):
        if calls.full:
            calls.overflow(doc[pos:])
            return len(doc)
        start = pos
        pos = _read_call(calls, doc, pos)
        if pos >= len(doc):
            return pos
        pos = _skip_space(doc, pos)
        if doc.startswith(",", pos):
            pos = _skip_space(doc, pos + 1)
        elif doc.startswith("]", pos):
            return pos + 1
        elif pos < len(doc):
            line, column = _line_col(doc, pos)
            calls.errors.append(
                CallError(
                    f"after tool call {calls.count}: expected ',' or ']' at line {line}, "
                    f"column {column}; the rest of the list was ignored",
                    doc[start:][:_RAW_CHARS],
                )
            )
            return len(doc)
    return pos


class _Parser:
    """Shared checks for the built-in parsers: size bound, type check, never raising."""

    name = ""

    def parse(self, text: str) -> ParsedTurn:
        """Split a model's text into content and calls. Never raises."""
        return self._guarded(text, self._parse)

    def _guarded(self, text: Any, parse: Any) -> ParsedTurn:
        """``parse(text)`` behind the shared checks: text, size bound, never raising."""
        if not isinstance(text, str):
            return ParsedTurn("", [], [CallError(f"expected text, got {type(text).__name__}", "")])
        if len(text) > MAX_TEXT_CHARS:
            message = (
                f"the turn is {len(text):,} characters, over the limit of {MAX_TEXT_CHARS:,}; "
                "it was not parsed for tool calls"
            )
            return ParsedTurn("", [], [CallError(message, text[:_RAW_CHARS])])
        try:
            return parse(text)
        except Exception as error:  # a bug here must not crash a rollout; report it instead
            message = f"the {self.name!r} parser failed ({type(error).__name__}: {error})"
            return ParsedTurn(text.strip(), [], [CallError(message, text[:_RAW_CHARS])])

    def _parse(self, text: str) -> ParsedTurn:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


# --- Hermes / Qwen -----------------------------------------------------------------------------


class HermesParser(_Parser):
    """Hermes / Qwen 2.5 / Qwen 3: one ``<tool_call>`` block per call.

    ``<tool_call>\\n{"name": "f", "arguments": {"x": 1}}\\n</tool_call>``. Keys may come in any
    order. A block left open (generation stopped before ``</tool_call>``) is still read; text
    after its JSON is content. Text outside the blocks (``<think>`` included) is the content.
    """

    name = "hermes"
    open_tag = "<tool_call>"
    close_tag = "</tool_call>"

    def _parse(self, text: str) -> ParsedTurn:
        calls, content, pos = _Calls(), [], 0
        while (start := text.find(self.open_tag, pos)) >= 0:
            content.append(text[pos:start])
            if calls.full:
                calls.overflow(text[start:])
                return calls.turn(content)
            body = start + len(self.open_tag)
            close = text.find(self.close_tag, body)
            following = text.find(self.open_tag, body)
            closed = close >= 0 and (following < 0 or close < following)
            if closed:
                end, pos = close, close + len(self.close_tag)
            else:
                end = pos = following if following >= 0 else len(text)
            self._read_block(calls, content, text, body, end, closed)
        content.append(text[pos:])
        return calls.turn(content)

    def _read_block(
        self, calls: _Calls, content: list[str], text: str, body: int, end: int, closed: bool
    ) -> None:
        start = _skip_space(text, body)
        raw = text[body:end].strip()
        if start >= end:
            calls.fail(f"empty {self.open_tag} block", raw)
            return
        # A prefix of the text, not a slice: JSON errors then report the turn's line and column.
        doc = text[:end]
        try:
            value, stop = _decode(doc, start)
            call = _call_from_object(value)
        except _Problem as problem:
            calls.fail(problem, raw)
            return
        rest = text[stop:end].strip()
        if rest and closed:
            line, column = _line_col(text, _skip_space(text, stop))
            calls.fail(
                f"unexpected text after the JSON object at line {line}, column {column}", raw
            )
            return
        calls.add(call)
        content.append(rest)

    def render(self, calls: Sequence[ParsedCall], content: str = "") -> str:
        """Qwen's chat-template layout: content, then one block per call, newline-separated."""
        parts = [content.strip()] if content.strip() else []
        for call in calls:
            payload = _dumps({"name": call.name, "arguments": call.arguments})
            parts.append(f"{self.open_tag}\n{payload}\n{self.close_tag}")
        return "\n".join(parts)


# --- Qwen3-Coder / Qwen3.5 XML ----------------------------------------------------------------

_XML_FUNCTION = re.compile(r"\s*<function=([^>\n]{1,200})>")
_XML_PARAMETER = re.compile(r"<parameter=([^>\n]{1,200})>")


class Qwen3XmlParser(_Parser):
    """Qwen3-Coder and Qwen3.5+: one ``<tool_call>`` block per call, its arguments as XML.

    ``<tool_call>\\n<function=NAME>\\n<parameter=ARG>\\nvalue\\n</parameter>\\n</function>\\n</tool_call>``.
    Values are raw text. With the tools' JSON schemas (``parse(text, tools=...)``) each value
    is typed by its parameter's schema: a ``string`` stays text even when it looks like JSON,
    ``integer``/``number``/``boolean``/``object``/``array``/``null`` are read as JSON. Without a
    schema a value that reads as JSON is JSON, else text. A block left open by the token limit
    is an error, never a call (a cut-off value is not the value the model meant). A
    ``<tool_call>`` block holding JSON is Hermes's, not this format's: it is left as content.
    """

    name = "qwen3_xml"
    open_tag = "<tool_call>"
    close_tag = "</tool_call>"

    def parse(self, text: str, tools: Sequence[Mapping[str, Any]] | None = None) -> ParsedTurn:
        """Split a model's text into content and calls, typing values by ``tools``' schemas
        (OpenAI format) when given. Never raises."""
        schemas = _parameter_schemas(tools)
        return self._guarded(text, lambda text: self._parse(text, schemas))

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
            if close < 0:
                calls.fail("the block was cut off before </tool_call>", text[start:])
                return calls.turn(content)
            self._read_block(calls, text[body:close], schemas or {})
            pos = close + len(self.close_tag)
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


def _parameter_schemas(tools: Sequence[Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """``{function name: {parameter: its JSON schema}}`` from OpenAI-format tool schemas."""
    found: dict[str, dict[str, Any]] = {}
    for tool in tools or ():
        function = tool.get("function", tool) if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            continue
        properties = (function.get("parameters") or {}).get("properties") or {}
        if isinstance(properties, Mapping):
            found[function["name"]] = {
                k: v for k, v in properties.items() if isinstance(v, Mapping)
            }
    return found


def _schema_type(value: Any) -> str:
    """The JSON-schema type name of a decoded JSON value."""
    if isinstance(value, bool):
        return "boolean"
    for kind, name in ((dict, "object"), (list, "array"), (str, "string"), (int, "integer")):
        if isinstance(value, kind):
            return name
    return "number" if isinstance(value, float) else "null"


def _typed_value(raw: str, schema: Mapping[str, Any] | None) -> Any:
    """An XML parameter's text as the value its schema says (see :class:`Qwen3XmlParser`)."""
    text = raw[1:] if raw.startswith("\n") else raw
    text = text[:-1] if text.endswith("\n") else text
    kinds = schema.get("type") if schema else None
    kinds = {kinds} if isinstance(kinds, str) else set(kinds or ())
    if kinds == {"string"} or (schema and "enum" in schema and not kinds - {"string"}):
        return text
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return text
    kind = _schema_type(value)
    if kinds and kind not in kinds and not (kind == "integer" and "number" in kinds):
        return text  # let the tool's argument validation report the mismatch
    return value


# --- GPT-OSS Harmony --------------------------------------------------------------------------

_HARMONY_MESSAGE = "<|message|>"
_HARMONY_ENDS = ("<|call|>", "<|end|>", "<|return|>")
_HARMONY_RECIPIENT = re.compile(r"\bto=(?:functions\.)?([^\s<]{1,200})")
_HARMONY_CHANNEL = re.compile(r"<\|channel\|>\s*(\w+)")


class HarmonyParser(_Parser):
    """GPT-OSS's Harmony format: a turn is a run of messages, each a header, ``<|message|>``,
    its body and an end token.

    A call is a message addressed to a function, on the commentary channel:
    ``<|channel|>commentary to=functions.NAME <|constrain|>json<|message|>{...}<|call|>`` (the
    recipient may also stand before ``<|channel|>``). The ``final`` channel, and commentary
    addressed to no one (a preamble), are the content. The ``analysis`` channel is reasoning:
    never a call and never content, even when it is addressed to a function. A call cut off
    before its end token (the token limit) is an error, never a call.
    """

    name = "harmony"

    def _parse(self, text: str) -> ParsedTurn:
        calls, content = _Calls(), []
        for header, body, ended in _harmony_messages(text):
            channel = _HARMONY_CHANNEL.search(header)
            channel_name = channel.group(1) if channel else ""
            recipient = _HARMONY_RECIPIENT.search(header)
            if channel_name == "analysis":
                continue  # reasoning: never a call, never the answer
            if recipient is None or recipient.group(1) == "assistant":
                content.append(body)
                continue
            if calls.full:
                calls.overflow(body)
                break
            if not ended:
                calls.fail("the call was cut off before <|call|>", header + body)
                continue
            try:
                name = _check_name(recipient.group(1))
                value, stop = _decode(body, _skip_space(body, 0))
                if body[stop:].strip():
                    raise _Problem("unexpected text after the arguments' JSON object")
                calls.add(ParsedCall(name, _arguments(value, "arguments")))
            except _Problem as problem:
                calls.fail(problem, header + _HARMONY_MESSAGE + body)
        return calls.turn(content)

    def render(self, calls: Sequence[ParsedCall], content: str = "") -> str:
        """The completion after the prompt's ``<|start|>assistant``: the content on the final
        channel, or one commentary message per call addressed to its function."""
        messages = []
        if content.strip():
            messages.append(f"<|channel|>final{_HARMONY_MESSAGE}{content.strip()}<|end|>")
        for call in calls:
            messages.append(
                f"<|channel|>commentary to=functions.{call.name} <|constrain|>json"
                f"{_HARMONY_MESSAGE}{_dumps(call.arguments)}<|call|>"
            )
        return "<|start|>assistant".join(messages)


def _harmony_messages(text: str) -> list[tuple[str, str, bool]]:
    """``(header, body, ended)`` of each message of a Harmony completion, in order."""
    messages = []
    for chunk in text.split("<|start|>"):
        if _HARMONY_MESSAGE not in chunk:
            if chunk.strip() and not messages and "<|channel|>" not in chunk:
                messages.append(("", chunk, True))  # plain text before any message
            continue
        header, body = chunk.split(_HARMONY_MESSAGE, 1)
        ends = [index for token in _HARMONY_ENDS if (index := body.find(token)) >= 0]
        ended = bool(ends)
        messages.append((header, body[: min(ends)] if ends else body, ended))
    return messages


# --- DeepSeek V3 / R1 / V3.1 --------------------------------------------------------------------

_DS_CALLS_BEGIN = "<\uff5ctool\u2581calls\u2581begin\uff5c>"
_DS_CALLS_END = "<\uff5ctool\u2581calls\u2581end\uff5c>"
_DS_CALL_BEGIN = "<\uff5ctool\u2581call\u2581begin\uff5c>"
_DS_CALL_END = "<\uff5ctool\u2581call\u2581end\uff5c>"
_DS_SEP = "<\uff5ctool\u2581sep\uff5c>"
_DS_FENCED = re.compile(r"\s*([^\s`]{1,200})\s*```(?:json)?\s*\n?(.*?)\n?```\s*\Z", re.DOTALL)


class DeepSeekParser(_Parser):
    """DeepSeek's tool-call blocks, written with full-width special tokens (``｜`` and ``▁``).

    - ``deepseek_v3`` (V3, R1): ``<｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME`` then the
      arguments in a fenced ``json`` block, then ``<｜tool▁call▁end｜>``;
    - ``deepseek_v31`` (V3.1): ``<｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{json}<｜tool▁call▁end｜>``.

    Calls sit between ``<｜tool▁calls▁begin｜>`` and ``<｜tool▁calls▁end｜>``; text outside is the
    content. Each parser reads both layouts (a V3 checkpoint fine-tuned on V3.1 data writes
    either); ``render`` writes its own. A call cut off before its end token is an error.
    """

    def __init__(self, style: str = "v3") -> None:
        if style not in ("v3", "v31"):
            raise ValueError(f"style must be 'v3' or 'v31', got {style!r}")
        self.style = style
        self.name = "deepseek_v3" if style == "v3" else "deepseek_v31"

    def _parse(self, text: str) -> ParsedTurn:
        calls, content, pos = _Calls(), [], 0
        while (start := text.find(_DS_CALL_BEGIN, pos)) >= 0:
            content.append(text[pos:start].replace(_DS_CALLS_BEGIN, ""))
            if calls.full:
                calls.overflow(text[start:])
                return calls.turn(content)
            body = start + len(_DS_CALL_BEGIN)
            end = text.find(_DS_CALL_END, body)
            if end < 0:
                calls.fail("the call was cut off before its end token", text[start:])
                return calls.turn(content)
            self._read_call(calls, text[body:end])
            pos = end + len(_DS_CALL_END)
        content.append(text[pos:].replace(_DS_CALLS_END, "").replace(_DS_CALLS_BEGIN, ""))
        return calls.turn(content)

    def _read_call(self, calls: _Calls, block: str) -> None:
        head, sep, tail = block.partition(_DS_SEP)
        if not sep:
            calls.fail("no <｜tool▁sep｜> between the function and its arguments", block)
            return
        fenced = _DS_FENCED.match(tail)
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


# --- Mistral -----------------------------------------------------------------------------------

_TOOL_CALLS = "[TOOL_CALLS]"
_ARGS = "[ARGS]"
_CALL_ID = "[CALL_ID]"


class MistralParser(_Parser):
    """Mistral: ``[TOOL_CALLS]`` then a JSON list, or the newer ``name[ARGS]{...}`` form.

    Older tokenizers (v2-v7): ``[TOOL_CALLS][{"name": "f", "arguments": {...}, "id": "..."}]``.
    Newer (v11+): ``[TOOL_CALLS]f[CALL_ID]a1b2c3d4e[ARGS]{...}`` per call, ``[CALL_ID]``
    optional. Text before the first ``[TOOL_CALLS]`` is the content; a trailing ``</s>`` is
    dropped. ``style`` picks the form :meth:`render` writes: ``"args"`` (newer) or ``"list"``.
    """

    name = "mistral"

    def __init__(self, style: str = "args") -> None:
        if style not in ("args", "list"):
            raise ValueError(f"style must be 'args' or 'list', got {style!r}")
        self.style = style

    def _parse(self, text: str) -> ParsedTurn:
        calls = _Calls()
        first = text.find(_TOOL_CALLS)
        if first < 0:
            return calls.turn(text)
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
        pos = _skip_space(doc, body)
        if pos >= end:
            calls.fail(f"nothing after {_TOOL_CALLS}", text[body - len(_TOOL_CALLS) : end])
            return ""
        if doc.startswith("[", pos):
            pos = _read_call_list(calls, doc, pos)
        elif doc.startswith("{", pos):
            pos = _read_call(calls, doc, pos)
        else:
            pos = self._read_args_form(calls, doc, pos)
        return doc[pos:]

    def _read_args_form(self, calls: _Calls, doc: str, pos: int) -> int:
        args = doc.find(_ARGS, pos)
        if args < 0:
            calls.fail(f"expected '{_ARGS}' after the function name", doc[pos:])
            return len(doc)
        head = doc[pos:args]
        name, _, call_id = head.partition(_CALL_ID)
        body = _skip_space(doc, args + len(_ARGS))
        try:
            name = _check_name(name.strip())
            if body >= len(doc):
                arguments, stop = {}, body
            else:
                value, stop = _decode(doc, body)
                arguments = _arguments(value, "arguments")
        except _Problem as problem:
            calls.fail(problem, doc[pos:])
            return len(doc)
        calls.add(ParsedCall(name, arguments, call_id.strip() or None))
        return stop

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


# --- Plain JSON --------------------------------------------------------------------------------

_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n")


class JsonParser(_Parser):
    """Plain JSON, a fallback for models without a tool-call format.

    The whole text (after leading space) is ``{"name": ..., "arguments": {...}}`` or a list of
    them, or the calls sit in fenced blocks (```` ```json ````, text around them is content).
    JSON that is not meant as a call (no ``name``/``arguments``/``parameters``/``function`` key)
    is left as content; so is broken JSON without a ``"name":`` key.
    """

    name = "json"

    def _parse(self, text: str) -> ParsedTurn:
        calls = _Calls()
        pos = _skip_space(text, 0)
        if text.startswith(("{", "["), pos):
            stop = self._read_json(calls, text, pos, len(text))
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
            stop = self._read_json(calls, text[:end], body, end) if body < end else None
            if stop is None:
                content.append(text[pos:after])  # not a call: the fence stays in the content
            else:
                content += [text[pos : match.start()], text[stop:end]]
            pos = after
        content.append(text[pos:])
        return calls.turn(content)

    @staticmethod
    def _read_json(calls: _Calls, doc: str, pos: int, end: int) -> int | None:
        """Read calls from the JSON at ``doc[pos]``; ``None`` if it is not meant as calls."""
        try:
            value, _ = _decode(doc, pos)
        except _Problem as problem:
            if not _LOOKS_LIKE_CALL.search(doc, pos, end):
                return None
            if doc.startswith("[", pos):  # element by element: the error names its call
                return _read_call_list(calls, doc, pos)
            calls.fail(problem, doc[pos:end])
            return end
        if not _is_call_like(value):
            return None
        if isinstance(value, list):
            return _read_call_list(calls, doc, pos)
        return _read_call(calls, doc, pos)

    def render(self, calls: Sequence[ParsedCall], content: str = "") -> str:
        """One object (or a list for several calls); after content, in a ```` ```json ```` block."""
        items = [{"name": call.name, "arguments": call.arguments} for call in calls]
        payload = _dumps(items[0] if len(items) == 1 else items)
        if not content.strip():
            return payload if calls else ""
        return f"{content.strip()}\n```json\n{payload}\n```" if calls else content.strip()


# --- Pythonic (Llama 3.2 / 3.3 / 4) ------------------------------------------------------------

_PYTHON_START, _PYTHON_END = "<|python_start|>", "<|python_end|>"
_LOOKS_LIKE_PY_CALL = re.compile(r"\[\s*[A-Za-z_][\w.]*\s*\(")


class PythonicParser(_Parser):
    """Llama 3.2+ "pythonic" calls: ``[get_weather(city="Paris"), get_time(zone="CET")]``.

    The text (or the part between ``<|python_start|>`` and ``<|python_end|>``, Llama 4) must be
    one Python list of calls with keyword arguments whose values are literals. It is read with
    :mod:`ast` and never evaluated. Tuples become lists; sets, bytes and complex numbers are
    refused.
    """

    name = "pythonic"

    def _parse(self, text: str) -> ParsedTurn:
        calls = _Calls()
        text = _cut_at_end_token(text)
        start, end, outside = 0, len(text), []
        for open_tag, close_tag in ((_PYTHON_START, _PYTHON_END), (_PYTHON_TAG, None)):
            tag = text.find(open_tag)
            if tag >= 0:
                outside.append(text[:tag])
                start = tag + len(open_tag)
                close = text.find(close_tag, start) if close_tag else -1
                if close >= 0:
                    end = close
                    outside.append(text[close + len(close_tag or "") :])
                break
        source = text[start:end].strip()
        if not (source.startswith("[") and source.endswith("]")):
            return calls.turn(text)
        offset = text.index(source, start)
        try:
            with warnings.catch_warnings():  # e.g. "invalid escape sequence" in a string
                warnings.simplefilter("ignore")
                tree = ast.parse(source, mode="eval")
        except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
            if not _LOOKS_LIKE_PY_CALL.match(source):
                return calls.turn(text)
            where = ""
            if isinstance(error, SyntaxError) and error.lineno and error.offset:
                lines = source.split("\n")
                pos = sum(len(line) + 1 for line in lines[: error.lineno - 1])
                line, column = _line_col(text, offset + pos + error.offset - 1)
                where = f" at line {line}, column {column}"
            reason = error.msg if isinstance(error, SyntaxError) else type(error).__name__
            calls.fail(f"invalid Python call list{where}: {reason}", source)
            return calls.turn(outside)
        if not isinstance(tree.body, ast.List) or not any(
            isinstance(item, ast.Call) for item in tree.body.elts
        ):
            return calls.turn(text)
        lines = source.split("\n")
        for item in tree.body.elts:
            if calls.full:
                calls.overflow(_source_of(lines, item))
                break
            try:
                calls.add(self._call(item))
            except _Problem as problem:
                calls.fail(problem, _source_of(lines, item))
        return calls.turn(outside)

    def _call(self, node: ast.expr) -> ParsedCall:
        if not isinstance(node, ast.Call):
            raise _Problem("expected a function call like f(x=1)")
        name = _dotted_name(node.func)
        if name is None:
            raise _Problem("the function must be a plain or dotted name")
        _check_name(name)
        if node.args:
            raise _Problem("positional arguments are not supported; write name=value")
        arguments: dict[str, Any] = {}
        for argument in node.keywords:
            if argument.arg is None:
                raise _Problem("'**' arguments are not supported; write name=value")
            try:
                value = _json_safe(ast.literal_eval(argument.value))
            except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
                raise _Problem(
                    f"argument {argument.arg!r} must be a literal "
                    "(string, number, True/False/None, list or dict)"
                ) from None
            arguments[argument.arg] = value
        if _too_deep(arguments):
            raise _Problem(f"arguments nested deeper than {MAX_DEPTH} levels")
        return ParsedCall(name, arguments)

    def render(self, calls: Sequence[ParsedCall], content: str = "") -> str:
        """``[f(a=1), ...]``; after content, wrapped in ``<|python_start|>...<|python_end|>``.

        Raises ``ValueError`` for an argument name that is not a Python identifier.
        """
        rendered = []
        for call in calls:
            for key in call.arguments:
                if not key.isidentifier() or keyword.iskeyword(key):
                    raise ValueError(f"argument name {key!r} cannot be written as f({key}=...)")
            arguments = ", ".join(f"{key}={value!r}" for key, value in call.arguments.items())
            rendered.append(f"{call.name}({arguments})")
        payload = f"[{', '.join(rendered)}]" if calls else ""
        if content.strip():
            wrapped = f"{_PYTHON_START}{payload}{_PYTHON_END}" if calls else ""
            return f"{content.strip()}{wrapped}"
        return payload


def _source_of(lines: list[str], node: ast.expr) -> str:
    """A node's source text, at most 500 characters (``ast.get_source_segment`` is slow on
    long lines). Offsets are in UTF-8 bytes, as ``ast`` counts them."""
    last = node.end_lineno or node.lineno
    chunk = "\n".join(lines[node.lineno - 1 : last]).encode()
    end = len(chunk) - len(lines[last - 1].encode()) + (node.end_col_offset or 0)
    return chunk[node.col_offset : end].decode(errors="replace")[:_RAW_CHARS]


def _dotted_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted_name(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _json_safe(value: Any) -> Any:
    """A literal as JSON data: tuples become lists; dict keys must be strings."""
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise ValueError("dict keys must be strings")
        return {key: _json_safe(item) for key, item in value.items()}
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise ValueError(f"{type(value).__name__} is not JSON data")


# --- Auto --------------------------------------------------------------------------------------


class AutoParser(_Parser):
    """Tries each parser in turn and returns the first result with a call or an error.

    The default order is ``harmony`` (it reads only GPT-OSS's ``to=functions.`` messages),
    ``deepseek_v3`` (only DeepSeek's full-width tokens; it reads V3.1's layout too),
    ``qwen3_xml`` (it reads only ``<tool_call>`` blocks holding
    ``<function=...>``, which Hermes would misread as broken JSON), ``hermes``, ``mistral``,
    ``llama3_json``, ``json``. :meth:`render` uses Hermes's format.
    """

    name = "auto"

    def __init__(self, parsers: Sequence[ToolCallParser] | None = None) -> None:
        self.parsers = list(
            parsers or (_HARMONY, _DEEPSEEK_V3, _QWEN3_XML, _HERMES, _MISTRAL, _LLAMA3, _JSON)
        )

    def parse(self, text: str, tools: Sequence[Mapping[str, Any]] | None = None) -> ParsedTurn:
        """Each parser in turn (tools' schemas to those that take them). Never raises."""
        return self._guarded(text, lambda text: self._parse(text, tools))

    def _parse(self, text: str, tools: Sequence[Mapping[str, Any]] | None = None) -> ParsedTurn:
        for parser in self.parsers:
            turn = _parse_with_tools(parser, text, tools)
            if turn.calls or turn.errors:
                return turn
        return ParsedTurn(text.strip(), [], [])

    def render(self, calls: Sequence[ParsedCall], content: str = "") -> str:
        default = next((p for p in self.parsers if p.name == "hermes"), self.parsers[0])
        return default.render(calls, content)

    def __repr__(self) -> str:
        return f"AutoParser({[parser.name for parser in self.parsers]!r})"


# --- Registry ----------------------------------------------------------------------------------

_HERMES, _MISTRAL, _LLAMA3, _JSON, _QWEN3_XML, _HARMONY = (
    HermesParser(),
    MistralParser(),
    Llama3JsonParser(),
    JsonParser(),
    Qwen3XmlParser(),
    HarmonyParser(),
)
_DEEPSEEK_V3, _DEEPSEEK_V31 = DeepSeekParser("v3"), DeepSeekParser("v31")
_PARSERS: dict[str, ToolCallParser] = {}


def register_parser(parser: ToolCallParser, *, replace: bool = False) -> None:
    """Make ``parser`` available by its ``name`` to :func:`get_parser` (and ``ToolEnv``).

    A parser is any object with a ``name``, ``parse(text) -> ParsedTurn`` and
    ``render(calls, content="") -> str``; ``parse`` must never raise. A name already taken is
    refused unless ``replace=True``.
    """
    name = getattr(parser, "name", None)
    if not isinstance(name, str) or not name:
        raise ParserRegistrationError(f"a parser needs a non-empty string 'name', got {name!r}")
    for method in ("parse", "render"):
        if not callable(getattr(parser, method, None)):
            raise ParserRegistrationError(f"parser {name!r} has no {method}() method")
    if name in _PARSERS and _PARSERS[name] is not parser and not replace:
        raise ParserRegistrationError(
            f"a tool-call parser named {name!r} is already registered; "
            "pass replace=True to override it, or pick another name"
        )
    _PARSERS[name] = parser


def get_parser(name: str) -> ToolCallParser:
    """The parser registered as ``name``; raises :class:`UnknownParserError` listing the known."""
    try:
        return _PARSERS[name]
    except (KeyError, TypeError):
        raise UnknownParserError(
            f"no tool-call parser named {name!r}; known parsers: {', '.join(list_parsers())}. "
            "Register your own with rlenv.tools.parsers.register_parser()."
        ) from None


def list_parsers() -> list[str]:
    """The registered parser names, sorted."""
    return sorted(_PARSERS)


for _parser in (
    _HERMES, _LLAMA3, _MISTRAL, _JSON, _QWEN3_XML, _HARMONY, _DEEPSEEK_V3, _DEEPSEEK_V31,
    PythonicParser(), AutoParser(),
):  # fmt: skip
    register_parser(_parser)


# --- Messages ----------------------------------------------------------------------------------


def as_assistant_message(
    parsed: ParsedTurn, *, id_prefix: str = "call", limit: int | None = None
) -> dict[str, Any]:
    """The turn as a standard assistant message: its text, and its calls as OpenAI-format
    ``tool_calls`` with arguments as JSON objects (what Hugging Face chat templates expect).
    Calls without an id get ``f"{id_prefix}_{index}"``; ``limit`` keeps only the first calls."""
    calls = parsed.calls if limit is None else parsed.calls[:limit]
    return {
        "role": "assistant",
        "content": parsed.content or None,
        "tool_calls": [
            {
                "id": call.id or f"{id_prefix}_{index}",
                "type": "function",
                "function": {"name": call.name, "arguments": dict(call.arguments)},
            }
            for index, call in enumerate(calls)
        ],
    }


def parse_message(
    message: Mapping[str, Any],
    parser: str | ToolCallParser = "hermes",
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> ParsedTurn:
    """The calls in an assistant message dict.

    If the message has ``tool_calls`` (OpenAI format: ``{"id", "type": "function", "function":
    {"name", "arguments"}}``, arguments a JSON string or a dict), those are the calls and the
    text content is the content. Otherwise the text content is parsed with ``parser`` (a name or
    a parser object); ``tools`` (OpenAI-format schemas) go to parsers whose formats carry
    values as text that only the schema can type (``qwen3_xml``). Malformed calls become
    errors; a non-dict ``message`` raises ``TypeError`` (a bug in the caller, not model output).
    """
    if not isinstance(message, Mapping):
        raise TypeError(f"message must be a dict, got {type(message).__name__}")
    tool_calls = message.get("tool_calls")
    if not tool_calls:
        chosen = get_parser(parser) if isinstance(parser, str) else parser
        return _parse_with_tools(chosen, _text_of(message), tools)
    calls = _Calls()
    content = _text_of(message)
    if not isinstance(tool_calls, list):
        calls.errors.append(
            CallError(f"'tool_calls' must be a list, got {_kind(tool_calls)}", repr(tool_calls))
        )
        return calls.turn(content)
    size = len(content) + sum(_arguments_size(call) for call in tool_calls)
    if size > MAX_TEXT_CHARS:
        message_ = f"the message is {size:,} characters, over the limit of {MAX_TEXT_CHARS:,}"
        return ParsedTurn("", [], [CallError(message_, content[:_RAW_CHARS])])
    for entry in tool_calls:
        if calls.full:
            calls.overflow(_short_repr(entry))
            break
        try:
            calls.add(_openai_call(entry))
        except _Problem as problem:
            calls.fail(problem, _short_repr(entry))
    return calls.turn(content)


def _parse_with_tools(
    parser: ToolCallParser, text: str, tools: Sequence[Mapping[str, Any]] | None
) -> ParsedTurn:
    """``parser.parse(text, tools=tools)`` where the parser takes schemas, else ``parse(text)``."""
    if tools and _takes_tools(parser):
        return parser.parse(text, tools=tools)  # type: ignore[call-arg]
    return parser.parse(text)


def _takes_tools(parser: ToolCallParser) -> bool:
    import inspect

    try:
        return "tools" in inspect.signature(parser.parse).parameters
    except (TypeError, ValueError):
        return False


def _text_of(message: Mapping[str, Any]) -> str:
    try:
        return message_text(message)
    except (TypeError, AttributeError):  # content of an unexpected type: no text
        return ""


def _arguments_size(entry: Any) -> int:
    function = entry.get("function") if isinstance(entry, Mapping) else None
    arguments = function.get("arguments") if isinstance(function, Mapping) else None
    return len(arguments) if isinstance(arguments, str) else 0


def _short_repr(value: Any) -> str:
    try:
        return _dumps(value)[:_RAW_CHARS]
    except (TypeError, ValueError, RecursionError):
        return repr(value)[:_RAW_CHARS]


def _openai_call(entry: Any) -> ParsedCall:
    if not isinstance(entry, Mapping):
        raise _Problem(f"expected an object with a 'function', got {_kind(entry)}")
    function = entry.get("function")
    if not isinstance(function, Mapping):
        if function is None:
            raise _Problem("missing 'function' (an object with 'name' and 'arguments')")
        raise _Problem(f"'function' must be an object, got {_kind(function)}")
    if "name" not in function:
        raise _Problem("missing 'function.name' (the function to call)")
    name = _check_name(function["name"])
    arguments = function.get("arguments")
    if isinstance(arguments, str) and arguments.strip():
        try:
            arguments = _DECODER.decode(arguments)
        except json.JSONDecodeError as error:
            raise _Problem(
                f"invalid JSON in 'function.arguments' at line {error.lineno}, "
                f"column {error.colno}: {error.msg}"
            ) from None
        except RecursionError:
            raise _Problem(
                f"'function.arguments' is nested deeper than {MAX_DEPTH} levels"
            ) from None
        except ValueError as error:
            raise _Problem(f"invalid JSON in 'function.arguments': {error}") from None
    if isinstance(arguments, Mapping):
        arguments = dict(arguments)
    call_id = entry.get("id")
    return ParsedCall(
        name,
        _arguments(arguments, "function.arguments"),
        call_id if isinstance(call_id, str) else None,
    )


def __getattr__(name: str) -> Any:
    """``ToolCall``: the old name of :class:`ParsedCall`, kept for a while with a warning."""
    if name == "ToolCall":
        warnings.warn(
            "ToolCall (rlenv.tools, rlenv.tools.parsers) is now ParsedCall (rlenv.chat.ToolCall "
            "is the chat message's tool-call dict); import ParsedCall instead",
            DeprecationWarning,
            stacklevel=2,
        )
        return ParsedCall
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
