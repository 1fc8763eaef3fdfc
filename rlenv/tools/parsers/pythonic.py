"""Pythonic calls (Llama 3.2 / 3.3 / 4): ``[f(a=1), g(b="x")]``, read with :mod:`ast`."""

from __future__ import annotations

import ast
import keyword
import math
import re
import warnings
from collections.abc import Sequence
from typing import Any

from rlenv.tools.parsers._base import (
    _RAW_CHARS,
    MAX_DEPTH,
    ParsedCall,
    ParsedTurn,
    _Calls,
    _check_name,
    _line_col,
    _Parser,
    _Problem,
    _skip_space,
    _too_deep,
)
from rlenv.tools.parsers.llama3 import _PYTHON_TAG, _cut_at_end_token

# --- Pythonic (Llama 3.2 / 3.3 / 4) ------------------------------------------------------------

_PYTHON_START, _PYTHON_END = "<|python_start|>", "<|python_end|>"
_LOOKS_LIKE_PY_CALL = re.compile(r"\[\s*[A-Za-z_][\w.]*\s*\(")
_KEYWORD_CALL = re.compile(r"\[\s*[A-Za-z_][\w.]*\s*\(\s*(?:[A-Za-z_]\w*\s*=(?!=)|\))")


def _list_end(text: str, start: int) -> int:
    """The index just past the ``]`` closing the list that opens at ``text[start]``, skipping
    brackets inside string literals; -1 if the text ends first, -2 if a bracket is closed by the
    wrong one (the list is malformed)."""
    closers: list[str] = []
    pos, quote = start, ""
    while pos < len(text):
        char = text[pos]
        if quote:
            if char == "\\":
                pos += 1
            elif text.startswith(quote, pos):
                pos += len(quote) - 1
                quote = ""
        elif char in "'\"":
            quote = char * 3 if text.startswith(char * 3, pos) else char
            pos += len(quote) - 1
        elif char in "([{":
            closers.append(")]}"["([{".index(char)])
        elif char in ")]}":
            if closers.pop() != char:
                return -2
            if not closers:
                return pos + 1
        pos += 1
    return -1


class PythonicParser(_Parser):
    """Llama 3.2+ "pythonic" calls: ``[get_weather(city="Paris"), get_time(zone="CET")]``.

    A Python list of calls with keyword arguments whose values are literals, read with
    :mod:`ast` and never evaluated. Tuples become lists; sets, bytes, complex and non-finite
    numbers are refused. Where the list may be:

    - the whole turn, or inside ``<|python_start|>...<|python_end|>`` (Llama 4) or after
      ``<|python_tag|>``: it is read, and anything malformed in it is an error;
    - after or before prose (``Let me check: [get_weather(city='Paris')] Here it is.``): a list
      that starts like a call with keyword arguments (``[name(key=`` or ``[name()``) is read,
      several such lists too; a bracket in prose such as ``[Note(s)]`` stays text.

    Cut-off policy: a list the text ends inside (its ``]`` never came) is an error that says it
    was cut off, never a partial call; a complete list whose ``<|python_end|>`` is missing is
    read.
    """

    name = "pythonic"

    def _parse(self, text: str) -> ParsedTurn:
        calls = _Calls()
        text = _cut_at_end_token(text)
        content, pos, strict = [], 0, True
        region_end = len(text)
        for open_tag, close_tag in ((_PYTHON_START, _PYTHON_END), (_PYTHON_TAG, None)):
            tag = text.find(open_tag)
            if tag >= 0:
                content.append(text[:tag])
                pos = tag + len(open_tag)
                close = text.find(close_tag, pos) if close_tag else -1
                if close >= 0:
                    region_end = close
                break
        else:
            strict = False
        region = text[:region_end]
        first, search = _skip_space(region, pos), pos
        while (match := _LOOKS_LIKE_PY_CALL.search(region, search)) is not None:
            start = search = match.start()
            whole = strict or start == first  # the list opens the region: it is meant as calls
            if not whole and not _KEYWORD_CALL.match(region, start):
                search += 1  # a bracket in prose, like "[Note(s)]": text
                continue
            content.append(region[pos:start])
            end = _list_end(region, start)
            if end == -1 and region_end == len(text):
                calls.fail("the call list was cut off before its closing ']'", region[start:])
                return calls.turn(content)
            if end < 0:
                end = region_end  # malformed brackets: the parse error will say where
            pos = search = self._read_list(calls, text, start, end)
            if calls.overflowed:
                break
        content.append(region[pos:])
        if region_end < len(text):
            content.append(text[region_end + len(_PYTHON_END) :])
        return calls.turn(content)

    def _read_list(self, calls: _Calls, text: str, start: int, end: int) -> int:
        """Read the calls of the list ``text[start:end]``; returns ``end``."""
        source = text[start:end]
        try:
            tree = _python_tree(text, start, end, "eval")
        except _BadPython as bad:
            calls.fail(f"invalid Python call list{bad}", source)
            return end
        elements = tree.body.elts if isinstance(tree.body, ast.List) else [tree.body]
        lines = source.split("\n")
        for item in elements:
            if calls.full:
                calls.overflow(_source_of(lines, item))
                break
            try:
                calls.add(self._call(item))
            except _Problem as problem:
                calls.fail(problem, _source_of(lines, item))
        return end

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


class _BadPython(Exception):
    """Source that is not Python; ``str()`` is ``" at line L, column C: reason"``."""


def _python_tree(text: str, start: int, end: int, mode: str) -> ast.AST:
    """``ast.parse(text[start:end], mode)`` (never evaluated); a syntax error raises
    :class:`_BadPython` with its line and column in the whole ``text``."""
    source = text[start:end]
    try:
        with warnings.catch_warnings():  # e.g. "invalid escape sequence" in a string
            warnings.simplefilter("ignore")
            return ast.parse(source, mode=mode)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        where = ""
        if isinstance(error, SyntaxError) and error.lineno and error.offset:
            lines = source.split("\n")
            offset = sum(len(line) + 1 for line in lines[: error.lineno - 1])
            line, column = _line_col(text, start + offset + error.offset - 1)
            where = f" at line {line}, column {column}"
        reason = error.msg if isinstance(error, SyntaxError) else type(error).__name__
        raise _BadPython(f"{where}: {reason}") from None


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
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite (1e999 is infinity)")
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise ValueError(f"{type(value).__name__} is not JSON data")
