"""Tools for language models: typed functions as tools, tool-call parsers, and ``ToolEnv``.

- :func:`tool` / :class:`Toolbox` (:mod:`rlenv.tools.core`): schemas from type hints and
  docstrings; validated execution that never crashes the env.
- :mod:`rlenv.tools.parsers`: the tool-call formats real models emit, read into
  :class:`ParsedCall` objects.
- :class:`ToolEnv` (:mod:`rlenv.tools.env`): the multi-turn call → result loop.
"""

from rlenv.tools import parsers as _parsers
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


# ``rlenv.tools.ToolCall``, the old name of ParsedCall, resolves with a DeprecationWarning.
__getattr__ = _parsers.__getattr__
