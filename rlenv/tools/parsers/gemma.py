"""Gemma: Gemma 4's and FunctionGemma's special-token calls (``call:NAME{key:value}``), and the
```` ```tool_code ```` fences Gemma 3 is prompted to write.

Sources for the layouts:

- Gemma 4: the function-calling guide (ai.google.dev/gemma/docs/capabilities/text/
  function-calling-gemma4), Gemma 4's chat template (vLLM
  ``examples/tool_chat_template_gemma4.jinja``), and vLLM's ``gemma4`` tool parser and tests
  (``vllm/tool_parsers/gemma4_tool_parser.py``, ``gemma4_utils.py``,
  ``tests/tool_parsers/test_gemma4_tool_parser.py``,
  ``tests/tool_parsers/test_gemma4_regex_and_bare_calls.py``).
- FunctionGemma: "FunctionGemma formatting and best practices"
  (ai.google.dev/gemma/docs/functiongemma/formatting-and-best-practices) and vLLM's
  ``functiongemma`` parser and ``tests/tool_parsers/test_functiongemma_tool_parser.py``.
- Gemma 3 has no tool tokens ("Gemma does not output a tool specific token",
  ai.google.dev/gemma/docs/capabilities/function-calling): Google's prompts ask either for a
  Python list of calls (read it with ``pythonic``) or, in the Gemma cookbook's agent guides
  (ai.google.dev/gemma/docs/meme-generator), for code "wrapped with ```tool_code```", with
  results returned in ```` ```tool_output ````: that is the ``gemma`` parser here.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rlenv.tools.parsers._base import (
    MAX_DEPTH,
    ParsedCall,
    ParsedTurn,
    _Calls,
    _check_name,
    _dumps,
    _line_col,
    _Parser,
    _Problem,
    _skip_space,
    _typed_value,
)
from rlenv.tools.parsers.pythonic import PythonicParser, _BadPython, _python_tree, _source_of

# --- Gemma 4 and FunctionGemma: call:NAME{key:value,...} between special tokens ---------------


@dataclass(frozen=True)
class _Style:
    start: str
    end: str
    quote: str
    """The token that opens and closes every string."""
    other_ends: tuple[str, ...]
    """Tokens also accepted in place of ``end`` (Gemma 4 sometimes closes with ``<turn|>``)."""
    dropped: tuple[str, ...]
    """Special tokens that end the model's turn after its calls; never content."""
    bare_after: tuple[str, ...] = ()
    """Markers after which ``call:NAME{`` is a call even without ``start``."""


_STYLES = {
    "gemma4": _Style(
        start="<|tool_call>",
        end="<tool_call|>",
        quote='<|"|>',
        other_ends=("<turn|>",),
        dropped=("<|tool_response>", "<turn|>"),
        bare_after=("<channel|>",),
    ),
    "functiongemma": _Style(
        start="<start_function_call>",
        end="<end_function_call>",
        quote="<escape>",
        other_ends=(),
        dropped=("<start_function_response>", "<end_of_turn>"),
    ),
}
_CALL_HEAD = re.compile(r"\s*:?\s*call\s*:\s*([^\s{}<>,:]{1,200})\s*\{")
_BARE_CALL = re.compile(r"call:([A-Za-z_][\w.-]{0,63})\{")
_BARE_KEY = re.compile(r"[^:{}\[\],<>]*")
_BARE_VALUE = re.compile(r"[^,{}\[\]<>]*")
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_PLAIN_KEY = re.compile(r"[A-Za-z_][\w.-]*")
_LITERALS = {"true": True, "false": False, "null": None, "None": None}


class _CutOff(_Problem):
    """The text ends inside the call."""


class _Reader:
    """Reads Gemma's argument syntax: objects ``{key:value,...}`` with bare or quoted keys,
    lists ``[value,...]``, strings between two quote tokens (anything but the token inside:
    commas, braces, quotes, newlines), and bare ``true``/``false``/``null``/numbers."""

    def __init__(self, text: str, quote: str, end_tokens: Sequence[str]) -> None:
        self.text, self.quote, self.end_tokens = text, quote, end_tokens
        self.quoted = False
        """Whether the value just read was a quoted string."""

    def space(self, pos: int) -> int:
        pos = _skip_space(self.text, pos)
        if pos >= len(self.text):
            raise _CutOff("the call was cut off before its arguments ended")
        return pos

    def object(self, pos: int, depth: int, schema: Mapping[str, Any] | None = None) -> tuple:
        """The object whose ``{`` is just before ``pos``; returns it and the position after
        its ``}``. With ``schema`` (the call's parameters), quoted strings are typed by it."""
        if depth > MAX_DEPTH:
            raise _Problem(f"arguments nested deeper than {MAX_DEPTH} levels")
        found: dict[str, Any] = {}
        pos = self.space(pos)
        while not self.text.startswith("}", pos):
            pos, key = self.key(pos)
            if key in found:
                raise _Problem(f"argument {key!r} is given twice")
            value, pos = self.value(pos, depth)
            if schema is not None and self.quoted and isinstance(value, str) and key in schema:
                kinds = schema[key].get("type")
                if kinds and "string" not in ([kinds] if isinstance(kinds, str) else kinds):
                    value = _typed_value(value, schema[key])  # "<escape>42<escape>" as a number
            found[key] = value
            pos = self.space(pos)
            if self.text.startswith(",", pos):
                pos = self.space(pos + 1)
            elif not self.text.startswith("}", pos):
                raise self.unexpected(pos, "',' or '}'")
        return found, pos + 1

    def key(self, pos: int) -> tuple[int, str]:
        if self.text.startswith(self.quote, pos):
            key, pos = self.string(pos)
        else:
            match = _BARE_KEY.match(self.text, pos)
            key, pos = match.group().strip(), match.end()  # type: ignore[union-attr]
            if not key:
                raise self.unexpected(pos, "an argument name")
        pos = self.space(pos)
        if not self.text.startswith(":", pos):
            raise self.unexpected(pos, f"':' after {key!r}")
        return self.space(pos + 1), key

    def value(self, pos: int, depth: int) -> tuple[Any, int]:
        self.quoted = False
        if self.text.startswith(self.quote, pos):
            value, pos = self.string(pos)
            self.quoted = True
            return value, pos
        if self.text.startswith("{", pos):
            return self.object(pos + 1, depth + 1)
        if self.text.startswith("[", pos):
            return self.array(pos + 1, depth + 1)
        match = _BARE_VALUE.match(self.text, pos)
        token, stop = match.group().strip(), match.end()  # type: ignore[union-attr]
        if stop >= len(self.text):
            raise _CutOff("the call was cut off before its arguments ended")
        if not token:
            raise self.unexpected(pos, "a value")
        return _bare(token), stop

    def array(self, pos: int, depth: int) -> tuple[list[Any], int]:
        if depth > MAX_DEPTH:
            raise _Problem(f"arguments nested deeper than {MAX_DEPTH} levels")
        items: list[Any] = []
        pos = self.space(pos)
        while not self.text.startswith("]", pos):
            item, pos = self.value(pos, depth)
            items.append(item)
            pos = self.space(pos)
            if self.text.startswith(",", pos):
                pos = self.space(pos + 1)
            elif not self.text.startswith("]", pos):
                raise self.unexpected(pos, "',' or ']'")
        return items, pos + 1

    def string(self, pos: int) -> tuple[str, int]:
        start = pos + len(self.quote)
        close = self.text.find(self.quote, start)
        # The call's own tokens never sit inside a string: past one, the string was left open
        # (and a quote found after it is another call's).
        inside = self.text[start:] if close < 0 else self.text[start:close]
        if any(token in inside for token in self.end_tokens):
            line, column = _line_col(self.text, pos)
            raise _Problem(f"a string opened at line {line}, column {column} is never closed")
        if close < 0:
            raise _CutOff("the call was cut off inside a string")
        return self.text[start:close], close + len(self.quote)

    def unexpected(self, pos: int, wanted: str) -> _Problem:
        line, column = _line_col(self.text, pos)
        shown = self.text[pos : pos + 20]
        return _Problem(f"expected {wanted} at line {line}, column {column}, got {shown!r}")


def _bare(token: str) -> Any:
    """A value written without quotes: a literal, a number, else the text itself (off the
    format, but kept for the tool's validation to judge)."""
    if token in _LITERALS:
        return _LITERALS[token]
    if _NUMBER.fullmatch(token):
        try:
            number = int(token) if re.fullmatch(r"-?\d+", token) else float(token)
        except ValueError as error:  # e.g. an integer of more than 4300 digits
            raise _Problem(f"invalid number {token[:40]!r}: {error}") from None
        if isinstance(number, float) and not math.isfinite(number):
            raise _Problem(f"invalid number {token[:40]!r}: numbers must be finite")
        return number
    return token


class GemmaParser(_Parser):
    """Gemma 4 (``style="gemma4"``) and FunctionGemma (``style="functiongemma"``): calls written
    as ``call:NAME{key:value,...}`` between special tokens.

    - Gemma 4: ``<|tool_call>call:get_weather{city:<|"|>Paris<|"|>,days:3}<tool_call|>``;
    - FunctionGemma:
      ``<start_function_call>call:get_weather{city:<escape>Paris<escape>}<end_function_call>``.

    Keys are bare (or quoted); strings sit between two quote tokens (``<|"|>``, ``<escape>``) and
    hold anything else verbatim (commas, braces, quotes, newlines); ``true``, ``false``,
    ``null`` and numbers are bare; objects and lists nest. Several calls in a row are parallel
    calls. Text before, between and after them is the content; the tokens that end the turn
    after calls (Gemma 4's ``<|tool_response>`` and ``<turn|>``, FunctionGemma's
    ``<start_function_response>`` and ``<end_of_turn>``) are dropped.

    With the tools' schemas (``parse(text, tools=...)``), a quoted string whose parameter's
    schema has a type but not ``string`` is typed by it (``<escape>42<escape>`` for an integer is
    42, as vLLM reads FunctionGemma); otherwise quoted values stay strings. A bare word that is
    no literal nor number is kept as text, for the tool's validation to judge.

    Variants Gemma 4 writes, read as calls (vLLM's tests): ``<turn|>`` closing a call instead of
    ``<tool_call|>``, a stray ``:`` after ``<|tool_call>``, and ``call:NAME{...}`` without
    ``<|tool_call>`` at the start of the turn or right after the thought channel's ``<channel|>``.

    Cut-off policy: a call whose closing ``}`` came is read even when its end token is missing
    (generation stopped, the token stripped); a call the text ends inside is an error that says
    it was cut off, never a partial call.
    """

    reads_schemas = True

    def __init__(self, style: str = "gemma4") -> None:
        if style not in _STYLES:
            raise ValueError(f"style must be one of {sorted(_STYLES)}, got {style!r}")
        self.style = style
        self.name = style
        self._tokens = _STYLES[style]

    def _next_call(self, text: str, pos: int) -> tuple[int, int] | None:
        """``(where the call's text starts, where its header starts)``, or None."""
        tokens = self._tokens
        found = text.find(tokens.start, pos)
        best = (found, found + len(tokens.start)) if found >= 0 else None
        candidates = [(marker, len(marker)) for marker in tokens.bare_after]
        if tokens.bare_after and pos == 0:
            candidates.append(("", 0))  # a turn that starts with call:NAME{
        for marker, size in candidates:
            at = _skip_space(text, 0) if not marker else text.find(marker + "call:", pos)
            if at < 0 or (best is not None and at >= best[0]):
                continue
            if _BARE_CALL.match(text, at + size):
                best = (at + size, at + size)
        return best

    def _parse(
        self, text: str, schemas: Mapping[str, Mapping[str, Any]] | None = None
    ) -> ParsedTurn:
        tokens = self._tokens
        ends = (tokens.end, *tokens.other_ends)
        reader = _Reader(text, tokens.quote, (*ends, tokens.start))
        calls, content, pos = _Calls(), [], 0
        while (found := self._next_call(text, pos)) is not None:
            start, header = found
            content.append(text[pos:start])
            if calls.full:
                calls.overflow(text[start:])
                return calls.turn(self._tidy(content))
            try:
                call, pos = self._call(reader, header, (schemas or {}))
            except _CutOff as problem:
                calls.fail(problem, text[start:])
                return calls.turn(self._tidy(content))
            except _Problem as problem:
                stop = min((i for e in ends if (i := text.find(e, header)) >= 0), default=-1)
                following = text.find(tokens.start, header)
                if following >= 0 and (stop < 0 or following < stop):
                    stop = following
                else:
                    stop = len(text) if stop < 0 else stop
                calls.fail(problem, text[start:stop])
                pos = self._past_end(text, stop, ends)
                continue
            calls.add(call)
        content.append(text[pos:])
        return calls.turn(self._tidy(content))

    def _call(
        self, reader: _Reader, pos: int, schemas: Mapping[str, Mapping[str, Any]]
    ) -> tuple[ParsedCall, int]:
        text, tokens = reader.text, self._tokens
        head = _CALL_HEAD.match(text, pos)
        if head is None:
            rest = text[pos:]
            if not rest.strip() or (
                "{" not in rest and not any(e in rest for e in (tokens.end, tokens.start))
            ):
                raise _CutOff(f"the call was cut off after {tokens.start}")
            raise _Problem(f"expected call:NAME{{...}} after {tokens.start}")
        name = _check_name(head.group(1))
        arguments, pos = reader.object(head.end(), 1, schemas.get(name))
        after = _skip_space(text, pos)
        ends = (tokens.end, *tokens.other_ends)
        if after < len(text) and not text.startswith((*ends, tokens.start), after):
            line, column = _line_col(text, after)
            raise _Problem(
                f"unexpected text after the arguments of {name!r} at line {line}, "
                f"column {column}: {text[after : after + 20]!r}"
            )
        return ParsedCall(name, arguments), self._past_end(text, pos, ends)

    @staticmethod
    def _past_end(text: str, pos: int, ends: Sequence[str]) -> int:
        """``pos``, or past an end token that follows it (space allowed)."""
        after = _skip_space(text, pos)
        for end in ends:
            if text.startswith(end, after):
                return after + len(end)
        return pos

    def _tidy(self, content: list[str]) -> list[str]:
        """The content without the tokens that end the turn."""
        tidied = []
        for piece in content:
            for token in self._tokens.dropped:
                piece = piece.replace(token, "")
            tidied.append(piece)
        return tidied

    def render(self, calls: Sequence[ParsedCall], content: str = "") -> str:
        """Content, then each call, keys sorted as the chat template writes them.

        Raises ``ValueError`` for a string (or key) holding the quote token itself, which the
        format cannot carry.
        """
        tokens = self._tokens
        rendered = [
            f"{tokens.start}call:{call.name}{self._format(call.arguments)}{tokens.end}"
            for call in calls
        ]
        return content.strip() + "".join(rendered)

    def _format(self, value: Any) -> str:
        quote = self._tokens.quote
        if isinstance(value, str):
            if quote in value:
                raise ValueError(f"a string holding {quote} cannot be written in this format")
            return f"{quote}{value}{quote}"
        if isinstance(value, bool) or value is None:
            return {True: "true", False: "false", None: "null"}[value]
        if isinstance(value, dict):
            items = []
            for key in sorted(value):
                written = key if _PLAIN_KEY.fullmatch(key) else self._format(key)
                items.append(f"{written}:{self._format(value[key])}")
            return "{" + ",".join(items) + "}"
        if isinstance(value, (list, tuple)):
            return "[" + ",".join(self._format(item) for item in value) + "]"
        return _dumps(value)

    def __repr__(self) -> str:
        return f"GemmaParser(style={self.style!r})"


# --- Gemma 3, prompted: ```tool_code fences ----------------------------------------------------

_TOOL_CODE = re.compile(r"```tool_code[ \t]*\n")
_FENCE_END = "```"
_PYTHONIC = PythonicParser()


class GemmaToolCodeParser(_Parser):
    """Gemma 3 prompted to wrap its calls "with ```tool_code```" (Google's Gemma guides): one
    Python call per line in a ```` ```tool_code ```` fence, text around it the content::

        Let me check.
        ```tool_code
        get_weather(city="Paris")
        get_time(zone="CET")
        ```

    Each call is read by the ``pythonic`` parser's reader (:mod:`ast`, never evaluated; keyword
    arguments with literal values). Also read, as such prompts get written: a Python list of
    calls inside the fence, and ``print(f(...))`` (Gemini's ``tool_code`` style) as ``f(...)``.
    A fence holding JSON is not this format's (the ``json`` parser reads fenced JSON): it is
    left as content. A ```` ```tool_output ```` block is the tool's reply, written by the
    environment, and stays content if the model writes one.

    Cut-off policy: a fence whose closing ```` ``` ```` is missing is read if its code is
    complete; code the text ends inside is an error saying it was cut off.
    """

    name = "gemma"

    def _parse(self, text: str) -> ParsedTurn:
        calls, content, pos = _Calls(), [], 0
        while (fence := _TOOL_CODE.search(text, pos)) is not None:
            body = _skip_space(text, fence.end())
            close = text.find(_FENCE_END, fence.end())
            end = close if close >= 0 else len(text)
            after = end + len(_FENCE_END) if close >= 0 else end
            if text.startswith(("{", "[{"), body) or re.match(r"\[\s*\{", text[body:end]):
                content.append(text[pos:after])  # JSON in the fence: not this format's
                pos = after
                continue
            content.append(text[pos : fence.start()])
            if calls.full:
                calls.overflow(text[fence.start() :])
                return calls.turn(content)
            self._read_code(calls, text, body, end, cut=close < 0)
            pos = after
        content.append(text[pos:])
        return calls.turn(content)

    @staticmethod
    def _read_code(calls: _Calls, text: str, start: int, end: int, *, cut: bool) -> None:
        source = text[start:end].rstrip()
        if not source:
            problem = "the call was cut off after ```tool_code" if cut else "empty ```tool_code"
            calls.fail(problem if cut else f"{problem} block", text[start:end])
            return
        try:
            tree = _python_tree(text, start, start + len(source), "exec")
        except _BadPython as bad:
            problem = f"invalid Python in the ```tool_code block{bad}"
            if cut:
                problem = f"the call was cut off before its ```tool_code block ended ({problem})"
            calls.fail(problem, source)
            return
        lines = source.split("\n")
        for statement in tree.body:
            if not isinstance(statement, ast.Expr):
                shown = ast.get_source_segment(source, statement) or ""
                calls.fail("expected a function call like f(x=1), got a statement", shown)
                continue
            for node in _calls_of(statement.value):
                if calls.full:
                    calls.overflow(_source_of(lines, node))
                    return
                try:
                    calls.add(_PYTHONIC._call(node))
                except _Problem as problem:
                    calls.fail(problem, _source_of(lines, node))

    def render(self, calls: Sequence[ParsedCall], content: str = "") -> str:
        """Content, then one ```` ```tool_code ```` fence with a call per line.

        Raises ``ValueError`` for an argument name that is not a Python identifier.
        """
        parts = [content.strip()] if content.strip() else []
        if calls:
            lines = [_PYTHONIC.render([call])[1:-1] for call in calls]  # "[f(a=1)]" -> "f(a=1)"
            parts.append("\n".join(["```tool_code", *lines, "```"]))
        return "\n".join(parts)


def _calls_of(node: ast.expr) -> list[ast.expr]:
    """The call expressions of one statement: ``print(f(...))`` is ``f(...)``, a list is its
    elements."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "print"
        and len(node.args) == 1
        and not node.keywords
        and isinstance(node.args[0], ast.Call)
    ):
        node = node.args[0]
    return list(node.elts) if isinstance(node, ast.List) else [node]
