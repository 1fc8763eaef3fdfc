"""Phi-4-mini: ``functools[{"name": ..., "arguments": {...}}, ...]``."""

from __future__ import annotations

from collections.abc import Sequence

from rlenv.tools.parsers._base import ParsedCall, ParsedTurn, _Parser
from rlenv.tools.parsers._marked_json import _call_list, _Marker, _read_marked_json

# --- Phi-4-mini --------------------------------------------------------------------------------

_FUNCTOOLS = _Marker("functools", word=True)
# Phi-4-mini's own special tokens, as its Ollama template writes past calls:
# <|tool_call|>[{"name": ..., "arguments": ...}]<|/tool_call|>.
_TOOL_CALL = _Marker("<|tool_call|>", special=True)
_CLOSERS = ("<|/tool_call|>",)


class Phi4MiniParser(_Parser):
    """Phi-4-mini: the calls as one JSON list after the word ``functools``.

    ``functools[{"name": "get_weather", "arguments": {"city": "Paris"}}, {...}]`` is the layout
    the system prompt of vLLM's ``tool_chat_template_phi4_mini.jinja`` asks for ("prefix function
    calls with functools marker (no closing marker required)"); ``"parameters"`` is accepted for
    ``"arguments"``, and so is one object without the list, ``functools{...}`` (as NVIDIA
    Dynamo's ``phi4`` parser reads it). Also read: Phi-4-mini's own special tokens,
    ``<|tool_call|>[...]<|/tool_call|>`` (a list or one object), as Ollama's ``phi4-mini``
    template writes them. Text before and after the list is the content. ``functools`` not
    followed by ``[`` or ``{`` (``import functools``) is text, and so is ``my_functools[0]``.

    Cut-off policy (shared by all parsers): a list whose ``]`` is missing keeps its complete
    calls; a call the text ends inside (or ``functools[`` and nothing after it) is an error
    saying it was cut off, never a partial call. A call list decoded with special tokens skipped
    (a bare ``[{"name": ...}]``) is the ``json`` parser's.
    """

    name = "phi4_mini"

    def _parse(self, text: str) -> ParsedTurn:
        return _read_marked_json(text, (_FUNCTOOLS, _TOOL_CALL), _CLOSERS)

    def render(self, calls: Sequence[ParsedCall], content: str = "") -> str:
        """Content, then ``functools`` and the calls' list on the next line."""
        text = content.strip()
        if not calls:
            return text
        payload = f"functools{_call_list(calls)}"
        return f"{text}\n{payload}" if text else payload
