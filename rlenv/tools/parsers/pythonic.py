"""Pythonic calls (Llama 3.2 / 3.3 / 4): ``[f(a=1), g(b="x")]``, read with :mod:`ast`."""

from __future__ import annotations

import ast
import keyword
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
    _too_deep,
)
from rlenv.tools.parsers.llama3 import _PYTHON_TAG, _cut_at_end_token

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
