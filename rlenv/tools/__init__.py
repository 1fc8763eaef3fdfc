"""Tools for language models: typed functions as tools, tool-call parsers, and ``ToolEnv``.

- :func:`tool` / :class:`Toolbox` (:mod:`rlenv.tools.core`): schemas from type hints and
  docstrings; validated execution that never crashes the env.
- :mod:`rlenv.tools.parsers`: the tool-call formats real models emit, read into
  :class:`ParsedCall` objects.
- :class:`ToolEnv` (:mod:`rlenv.tools.env`): the multi-turn call → result loop.
"""

from typing import Any

from rlenv.tools.core import Tool, Toolbox, ToolOutcome, tool
from rlenv.tools.env import ToolEnv
from rlenv.tools.parsers import ParsedCall, ParsedTurn, get_parser, list_parsers, parse_message

__all__ = [
    "ParsedCall",
    "ParsedTurn",
    "Tool",
    "ToolEnv",
    "ToolOutcome",
    "Toolbox",
    "get_parser",
    "list_parsers",
    "parse_message",
    "tool",
]


def __getattr__(name: str) -> Any:
    """``ToolCall``: the old name of :class:`ParsedCall`, kept for a while with a warning."""
    if name == "ToolCall":
        import warnings

        warnings.warn(
            "rlenv.tools.ToolCall is now ParsedCall (rlenv.chat.ToolCall is the chat "
            "message's tool-call dict); import ParsedCall instead",
            DeprecationWarning,
            stacklevel=2,
        )
        return ParsedCall
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
