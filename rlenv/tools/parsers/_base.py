"""What every tool-call parser shares: the results (:class:`ParsedCall`, :class:`CallError`,
:class:`ParsedTurn`), the work bounds, the JSON reading, and the never-raising :class:`_Parser`
base. Package-internal helpers keep their leading underscore."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, runtime_checkable

from rlenv.errors import RLEnvError
from rlenv.reasoning import REASONING_OPENERS, reasoning_spans

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
    kind: Literal["malformed", "unknown tool"] = "malformed"
    """``"malformed"``: the text is not a readable call (a parse error). ``"unknown tool"``: a
    well-formed call to a tool not among the schemas ``parse`` was given (the model's mistake,
    not the parser's: ``ToolEnv`` does not count it as a parse error)."""


@dataclass(frozen=True)
class ParsedTurn:
    """A model turn split into its answer text, its tool calls and its reasoning.

    The built-in parsers set the reasoning apart before they look for calls (see
    :class:`_Parser`): ``<think>...</think>`` (Qwen3, DeepSeek-R1, GLM, Kimi, MiniMax),
    ``[THINK]...[/THINK]`` (Magistral, Ministral 3) and Harmony's ``analysis`` channel (GPT-OSS).
    Reasoning is never content, and a call written inside it is not a call, unless the parser's
    family writes its real calls there (``calls_in_reasoning``, e.g. Kimi-K2-Thinking).
    """

    content: str
    """The text outside the tool calls and the reasoning, stripped."""
    calls: list[ParsedCall] = field(default_factory=list)
    """The well-formed calls, in the order they appear."""
    errors: list[CallError] = field(default_factory=list)
    """The malformed calls (parsing never raises), and calls to tools not offered when the
    parser was given the tools' schemas."""
    reasoning: str = ""
    """The reasoning, each block stripped, blocks joined by newlines; ``""`` when none."""


@runtime_checkable
class ToolCallParser(Protocol):
    """What a parser provides. Register your own with :func:`register_parser`.

    Optional: ``parse`` may take ``tools`` (OpenAI-format schemas, for formats whose values
    only the schema can type), and a class attribute ``calls_in_reasoning`` (``False`` when
    absent) says that the family writes its real calls inside its reasoning block, so they are
    read there too. Whether a parser of your own sets the reasoning apart is up to it; the
    built-in ones do.
    """

    name: str

    def parse(self, text: str) -> ParsedTurn:
        """Split a model's text into content, calls and reasoning; must never raise."""
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

    def turn(self, content: str | Sequence[str], reasoning: str | Sequence[str] = "") -> ParsedTurn:
        return ParsedTurn(_joined(content), self.calls, self.errors, _joined(reasoning))


def _joined(pieces: str | Sequence[str]) -> str:
    """Pieces of text stripped, the empty ones dropped, the rest joined by newlines."""
    if isinstance(pieces, str):
        return pieces.strip()
    return "\n".join(piece.strip() for piece in pieces if piece.strip())


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


def _json_cut_off(doc: str, pos: int) -> bool:
    """Whether the JSON starting at ``doc[pos]`` is cut off where ``doc`` ends: still open there
    (inside a string, or an object or list not closed) and, closed at that point, valid JSON. A
    text that is broken before its end (``{"a": {x}``) is malformed, not cut off."""
    closers, in_string, escaped = [], False, False
    for index in range(pos, len(doc)):
        char = doc[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            closers.append("}" if char == "{" else "]")
        elif char in "}]":
            if not closers or closers.pop() != char:
                return False
            if not closers:
                return False  # the value closed before the end: not cut off
    if not (closers or in_string):
        return False
    head = doc[pos:] + ('"' if in_string and not escaped else "")
    if escaped:
        head = doc[pos:-1] + '"'
    head = head.rstrip()
    if head.endswith(","):
        head = head[:-1]
    elif head.endswith(":"):
        head += " null"
    elif head.endswith(("{", "[")) is False and re.search(r'[{,]\s*"(?:[^"\\]|\\.)*"\Z', head):
        head += ": null"  # cut after an object key
    if re.search(r"(?:-|\d[.eE]|\d[eE][-+])\Z", head):  # cut inside a number
        head += "0"
    for literal in ("true", "false", "null"):  # cut inside a literal
        for size in range(1, len(literal)):
            if head.endswith(literal[:size]) and not head.endswith(literal):
                head = head[:-size] + literal
                break
    try:
        json.loads(head + "".join(reversed(closers)))
    except (ValueError, RecursionError):
        return False
    return True


def _cut_off_problem(problem: _Problem) -> _Problem:
    return _Problem(f"the call was cut off before its JSON ended ({problem})")


def _read_call(
    calls: _Calls, doc: str, pos: int, end: int | None = None, *, at_end: bool = True
) -> int:
    """Decode one call object at ``doc[pos]`` into ``calls``; returns where it ended.

    Broken JSON is recorded and ``len(doc)`` returned (the rest cannot be read); JSON that is
    not a call is recorded and reading goes on after it. When ``doc``
    ends where the turn ends (``at_end``) and the JSON is still open there, the error says the
    call was cut off.
    """
    try:
        value, stop = _decode(doc, pos)
    except _Problem as problem:
        if at_end and _json_cut_off(doc, pos):
            problem = _cut_off_problem(problem)
        calls.fail(problem, doc[pos:end])
        return len(doc)
    try:
        calls.add(_call_from_object(value))
    except _Problem as problem:  # valid JSON, not a valid call: the calls after it still count
        calls.fail(problem, doc[pos:stop])
    return stop


def _read_call_list(calls: _Calls, doc: str, pos: int, *, at_end: bool = True) -> int:
    """Read a JSON list of call objects starting at ``doc[pos] == '['``; returns its end.

    Elements are decoded one by one so each error names its call and its position. A list whose
    closing ``]`` is missing keeps its complete calls; an element the text ends inside is an
    error saying it was cut off.
    """
    pos = _skip_space(doc, pos + 1)
    if doc.startswith("]", pos):
        return pos + 1
    while pos < len(doc):
        if calls.full:
            calls.overflow(doc[pos:])
            return len(doc)
        start = pos
        pos = _read_call(calls, doc, pos, at_end=at_end)
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


# --- Reasoning ---------------------------------------------------------------------------------

_NOT_NEWLINE = re.compile(r"[^\n]")


def _blanked(text: str, spans: Sequence[tuple[int, int, str]]) -> str:
    """``text`` with each span turned to spaces, its newlines kept: nothing in it can be read as
    a call, and lines and columns elsewhere stay those of the model's whole text."""
    pieces, pos = [], 0
    for start, end, _ in spans:
        pieces += [text[pos:start], _NOT_NEWLINE.sub(" ", text[start:end])]
        pos = end
    pieces.append(text[pos:])
    return "".join(pieces)


def _tidied(content: str, text: str, spans: Sequence[tuple[int, int, str]]) -> str:
    """``content`` with the blank of each block that stood inside it (not at the start or the
    end of ``text``) removed: nothing where whitespace is next to it, else one space, or one
    newline if the block spanned lines, so the words on either side stay apart."""
    pos, lead, trail = 0, len(text) - len(text.lstrip()), len(text.rstrip())
    for start, end, _ in spans:
        if start <= lead or end >= trail:
            continue
        blank = _NOT_NEWLINE.sub(" ", text[start:end])
        found = content.find(blank, pos)
        if found >= 0:
            after = found + len(blank)
            spaced = content[found - 1 : found].isspace() or content[after : after + 1].isspace()
            gap = "" if spaced else "\n" if "\n" in blank else " "
            content = content[:found] + gap + content[after:]
            pos = found + len(gap)
    return content


# --- Unknown tools -----------------------------------------------------------------------------

_NUMBERED_ERROR = re.compile(r"(after )?tool call (\d+)\b")
_NAMES_SHOWN = 30


def _tool_names(tools: Sequence[Mapping[str, Any]] | None) -> frozenset[str]:
    """The function names of OpenAI-format tool schemas (``{"function": {"name": ...}}`` or
    the bare ``{"name": ...}``)."""
    names = set()
    for tool in tools or ():
        function = tool.get("function", tool) if isinstance(tool, Mapping) else None
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            names.add(function["name"])
    return frozenset(names)


def _offered(name: str, names: frozenset[str]) -> bool:
    """Whether ``name`` is among ``names``. OpenAI-format names cannot hold a dot, so a tool
    whose own name is dotted (BFCL's ``spotify.play``) is offered as ``spotify_play``, and a
    model may write either."""
    return name in names or name.replace(".", "_") in names


def _unknown_tool(name: str, names: frozenset[str]) -> str:
    """Why a call to ``name`` is refused: the tools offered, and the closest one."""
    known = sorted(names)
    shown = ", ".join(known[:_NAMES_SHOWN])
    if len(known) > _NAMES_SHOWN:
        shown += f", ... ({len(known) - _NAMES_SHOWN} more)"
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown tool {name!r}{hint}; the tools are: {shown}"


def _error_order(error: CallError) -> tuple[float, int]:
    match = _NUMBERED_ERROR.match(error.message)
    if match is None:
        return (float("inf"), 0)
    return (int(match.group(2)), 1 if match.group(1) else 0)


def _check_tool_names(turn: ParsedTurn, tools: Sequence[Mapping[str, Any]] | None) -> ParsedTurn:
    """``turn`` with each call to a tool not among ``tools`` turned into a :class:`CallError`.

    Without schemas (``tools`` empty or None, or no names in them) nothing is checked. The
    error keeps the call's number in the turn: calls take, in order, the numbers the turn's
    ``tool call N:`` errors left free (the numbering every parser follows). Checking a turn
    twice changes nothing.
    """
    names = _tool_names(tools)
    if not names or all(_offered(call.name, names) for call in turn.calls):
        return turn
    taken = {
        int(match.group(2))
        for error in turn.errors
        if (match := _NUMBERED_ERROR.match(error.message)) and not match.group(1)
    }
    kept, errors, number = [], list(turn.errors), 0
    for call in turn.calls:
        number += 1
        while number in taken:
            number += 1
        if _offered(call.name, names):
            kept.append(call)
            continue
        raw = _dumps({"name": call.name, "arguments": call.arguments})[:_RAW_CHARS]
        message = f"tool call {number}: {_unknown_tool(call.name, names)}"
        errors.append(CallError(message, raw, kind="unknown tool"))
    errors.sort(key=_error_order)
    return replace(turn, calls=kept, errors=errors)


# --- The base parser ---------------------------------------------------------------------------


class _Parser:
    """Shared work of the built-in parsers: size bound, type check, reasoning set apart, unknown
    tools refused, never raising. A format's own reading is its ``_parse(text)``."""

    name = ""
    calls_in_reasoning = False
    """Whether the family writes its real calls inside its reasoning block (Kimi-K2-Thinking):
    then calls are read there too. Either way the reasoning text is never content."""
    reasoning_openers: tuple[str, ...] = REASONING_OPENERS
    """The reasoning blocks set apart before parsing (``<think>``, ``[THINK]``, Gemma 4's
    ``<|channel>thought``); ``()`` for a family whose reasoning is part of its own format."""
    template_arguments: Literal["object", "json"] = "object"
    """How the family's chat template wants ``function.arguments`` in an assistant message: a
    JSON object (most) or a JSON string (``"json"``: DeepSeek, InternLM2); ``ToolEnv`` writes
    its observations that way (:func:`as_assistant_message`)."""
    reads_schemas = False
    """Whether ``_parse`` takes the tools' parameter schemas (``_parse(text, schemas)``, as
    :func:`_parameter_schemas` builds them): formats that write values as text only the schema
    can type (Qwen3-Coder, GLM, MiniMax, Gemma 4), or that need the tool names (Mistral's
    unmarked calls)."""

    def parse(self, text: str, tools: Sequence[Mapping[str, Any]] | None = None) -> ParsedTurn:
        """Split a model's text into content, calls and reasoning. With ``tools`` (OpenAI-format
        schemas), a call to a tool not among them is a :class:`CallError`, and values written as
        text are typed by their schema (``reads_schemas``). Never raises."""
        if self.reads_schemas:
            schemas = _parameter_schemas(tools)
            return self._guarded(text, lambda text: self._parse(text, schemas), tools)
        return self._guarded(text, self._parse, tools)

    def _guarded(
        self, text: Any, parse: Any, tools: Sequence[Mapping[str, Any]] | None = None
    ) -> ParsedTurn:
        """``parse(text)`` behind the shared checks.

        1. ``text`` must be a string within :data:`MAX_TEXT_CHARS`.
        2. Reasoning is set apart: ``<think>...</think>`` and ``[THINK]...[/THINK]`` blocks
           (several may be; a text whose first marker is a closer began inside a block the prompt
           opened; a block never closed runs to the end) become ``ParsedTurn.reasoning`` and are
           blanked out of the text ``parse`` reads, so a call written in them is not a call and
           their text is not content; lines and columns in errors stay those of the whole text.
           Where :attr:`calls_in_reasoning` is set, the calls come from the whole text instead.
        3. With ``tools``, calls to tools not offered become errors.
        4. An exception inside ``parse`` (a bug) becomes a :class:`CallError`.
        """
        if not isinstance(text, str):
            return ParsedTurn("", [], [CallError(f"expected text, got {type(text).__name__}", "")])
        if len(text) > MAX_TEXT_CHARS:
            message = (
                f"the turn is {len(text):,} characters, over the limit of {MAX_TEXT_CHARS:,}; "
                "it was not parsed for tool calls"
            )
            return ParsedTurn("", [], [CallError(message, text[:_RAW_CHARS])])
        spans = reasoning_spans(text, self.reasoning_openers)
        outside = _blanked(text, spans) if spans else text
        reasoning = [span[2] for span in spans]
        try:
            turn = parse(outside)
            if spans and self.calls_in_reasoning:
                whole = parse(text)
                turn = replace(turn, calls=whole.calls, errors=whole.errors)
        except Exception as error:  # a bug here must not crash a rollout; report it instead
            message = f"the {self.name!r} parser failed ({type(error).__name__}: {error})"
            turn = ParsedTurn(outside.strip(), [], [CallError(message, text[:_RAW_CHARS])])
        if reasoning:
            content = _tidied(turn.content, text, spans)
            turn = replace(turn, content=content, reasoning=_joined([*reasoning, turn.reasoning]))
        return _check_tool_names(turn, tools)

    def _parse(self, text: str) -> ParsedTurn:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


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


_TYPE_ALIASES = {
    "float": "number", "double": "number", "int": "integer", "bool": "boolean", "str": "string",
    "dict": "object", "list": "array", "tuple": "array",
}  # fmt: skip
"""Python type names that hand-written schemas use for JSON-schema types (SGLang's and vLLM's
Qwen3-Coder parsers read them too)."""


def _typed_value(raw: str, schema: Mapping[str, Any] | None) -> Any:
    """An XML parameter's text as the value its schema says (see :class:`Qwen3XmlParser`)."""
    text = raw[1:] if raw.startswith("\n") else raw
    text = text[:-1] if text.endswith("\n") else text
    kinds = schema.get("type") if schema else None
    kinds = {kinds} if isinstance(kinds, str) else set(kinds or ())
    kinds = {_TYPE_ALIASES.get(kind, kind) for kind in kinds if isinstance(kind, str)}
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


def _parse_with_tools(
    parser: ToolCallParser, text: str, tools: Sequence[Mapping[str, Any]] | None
) -> ParsedTurn:
    """``parser.parse(text, tools=tools)`` where the parser takes schemas, else ``parse(text)``;
    either way a call to a tool not among ``tools`` is a :class:`CallError` (parsers of one's
    own included)."""
    if tools and _takes_tools(parser):
        return _check_tool_names(parser.parse(text, tools=tools), tools)  # type: ignore[call-arg]
    return _check_tool_names(parser.parse(text), tools)


def _takes_tools(parser: ToolCallParser) -> bool:
    import inspect

    try:
        return "tools" in inspect.signature(parser.parse).parameters
    except (TypeError, ValueError):
        return False
