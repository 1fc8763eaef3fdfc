"""IBM Granite 3.x: ``<|tool_call|>[{"name": ..., "arguments": {...}}]`` (and Granite 4's
Hermes blocks, handed to the ``hermes`` reading)."""

from __future__ import annotations

from collections.abc import Sequence

from rlenv.tools.parsers._base import ParsedCall, ParsedTurn, _Parser
from rlenv.tools.parsers._marked_json import _call_list, _Marker, _read_marked_json
from rlenv.tools.parsers.hermes import HermesParser

# --- Granite 3.x -------------------------------------------------------------------------------

_TOOL_CALL_TOKEN = "<|tool_call|>"
_MARKERS = (
    _Marker(_TOOL_CALL_TOKEN, special=True),  # Granite 3.0, 3.2, 3.3: a special token
    _Marker("<tool_call>", opens="["),  # Granite 3.1: the same list after a plain-text tag
)
_CLOSERS = ("</tool_call>", "<|/tool_call|>")


class GraniteParser(_Parser):
    """IBM Granite 3.x: one JSON list of calls after ``<|tool_call|>``.

    ``<|tool_call|>[{"name": "get_weather", "arguments": {"city": "Paris"}}, {...}]``. Granite
    3.0, 3.2 and 3.3 write ``<|tool_call|>``, a special token (serve with special tokens kept);
    Granite 3.1 writes the plain-text ``<tool_call>`` instead (vLLM PR #11307), read here only
    when a JSON list follows it. Keys may come in any order (Granite writes ``"arguments"``
    first); a single object after ``<|tool_call|>`` (vLLM's ``tool_chat_template_granite.jinja``
    writes one per marker) and a ``</tool_call>`` after the list are accepted. Text before and
    after is the content.

    **Granite 4** writes Hermes blocks, ``<tool_call>{"name": ..., "arguments": ...}</tool_call>``
    (vLLM's ``granite4`` parser): a turn without Granite 3's list form is read as ``hermes``
    reads it, so this parser serves every Granite generation and gives ``hermes``'s result on
    Hermes text.

    Cut-off policy (shared by all parsers): a list whose ``]`` is missing keeps its complete
    calls; a call the text ends inside is an error saying it was cut off, never a partial call.
    ``<|tool_call|>`` followed by anything but JSON is a malformed call.
    """

    name = "granite"

    def __init__(self) -> None:
        self._hermes = HermesParser()

    def _parse(self, text: str) -> ParsedTurn:
        turn = _read_marked_json(text, _MARKERS, _CLOSERS)
        if turn.calls or turn.errors:
            return turn
        return self._hermes._parse(text)  # Granite 4 (the reasoning is already set apart)

    def render(self, calls: Sequence[ParsedCall], content: str = "") -> str:
        """Content, then ``<|tool_call|>`` and the calls' list (Granite 3.0/3.2/3.3)."""
        text = content.strip()
        if not calls:
            return text
        return f"{text}{_TOOL_CALL_TOKEN}{_call_list(calls)}"
