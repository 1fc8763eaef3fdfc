"""Tools for language models: typed functions as tools, tool-call parsers, and ``ToolEnv``.

- :func:`tool` / :class:`Toolbox` (:mod:`rlenv.tools.core`): schemas from type hints and
  docstrings, validated and sandboxed-in-Python execution that never crashes the env.
- :mod:`rlenv.tools.parsers`: the tool-call formats real models emit.
- :class:`ToolEnv` (:mod:`rlenv.tools.env`): the multi-turn call → result loop.
"""

from rlenv.tools.core import Tool, Toolbox, ToolOutcome, tool

__all__ = ["Tool", "ToolOutcome", "Toolbox", "tool"]
