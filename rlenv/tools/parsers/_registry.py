"""The registry of tool-call parsers by name (``ToolEnv(parser=...)``, ``get_parser``)."""

from __future__ import annotations

from rlenv.tools.parsers._base import ParserRegistrationError, ToolCallParser, UnknownParserError

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
