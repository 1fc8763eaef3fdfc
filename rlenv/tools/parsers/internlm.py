"""InternLM 2 / 2.5: ``<|action_start|><|plugin|>{json}<|action_end|>``."""

from __future__ import annotations

from collections.abc import Sequence

from rlenv.tools.parsers._base import (
    ParsedCall,
    ParsedTurn,
    _call_from_object,
    _Calls,
    _cut_off_problem,
    _decode,
    _dumps,
    _json_cut_off,
    _line_col,
    _Parser,
    _Problem,
    _skip_space,
)

# --- InternLM 2 / 2.5 --------------------------------------------------------------------------

_ACTION_START = "<|action_start|>"
_ACTION_END = "<|action_end|>"
_PLUGIN = "<|plugin|>"
_INTERPRETER = "<|interpreter|>"
_END_OF_TURN = "<|im_end|>"  # when the engine keeps it, it is not content


class InternLMParser(_Parser):
    """InternLM 2 / 2.5: each call is an action addressed to the plugin executor.

    ``<|action_start|><|plugin|>\\n{"name": "get_weather", "parameters": {"city": "Paris"}}``
    ``<|action_end|>`` (``"arguments"`` is accepted for ``"parameters"``). InternLM writes one
    action per turn; several in a row are read in order. Text before and after the actions is
    the content (the chat template puts the model's text first); an ``<|im_end|>`` left by the
    engine is dropped. The markers are special tokens: serve with special tokens kept.

    An action for the code interpreter (``<|action_start|><|interpreter|>`` then code) is not a
    function call: it is an error that says so, not content, so it is never silently dropped.

    Cut-off policy (shared by all parsers): an action whose JSON is complete but whose
    ``<|action_end|>`` is missing (generation stopped, the stop token stripped) is read, and
    text after its JSON is content; an action the text ends inside its JSON is an error saying
    it was cut off, never a partial call.
    """

    name = "internlm"
    template_arguments = "json"  # vLLM's template prints function.arguments as text

    def _parse(self, text: str) -> ParsedTurn:
        calls, content, pos = _Calls(), [], 0
        while (start := text.find(_ACTION_START, pos)) >= 0:
            content.append(text[pos:start])
            if calls.full:
                calls.overflow(text[start:])
                return calls.turn(content)
            head = start + len(_ACTION_START)
            close = text.find(_ACTION_END, head)
            following = text.find(_ACTION_START, head)
            closed = close >= 0 and (following < 0 or close < following)
            if closed:
                end, pos = close, close + len(_ACTION_END)
            else:
                end = pos = following if following >= 0 else len(text)
            leftover = self._read_action(calls, text, start, head, end, closed)
            content.append(leftover)
        content.append(text[pos:])
        return calls.turn([piece.replace(_END_OF_TURN, "") for piece in content])

    @staticmethod
    def _read_action(
        calls: _Calls, text: str, start: int, head: int, end: int, closed: bool
    ) -> str:
        """Read the action in ``text[head:end]`` into ``calls``; returns the text left over
        (content), which is only the text after the JSON of an action left open."""
        raw = text[start:end]
        executor = _skip_space(text, head)
        if text.startswith(_INTERPRETER, executor):
            calls.fail(
                f"an {_INTERPRETER} action is code for InternLM's interpreter, not a function "
                f"call; function calls are {_ACTION_START}{_PLUGIN} actions",
                raw,
            )
            return ""
        if not text.startswith(_PLUGIN, executor):
            at_end = not closed and _skip_space(text, executor) >= len(text)
            calls.fail(
                f"the call was cut off after {_ACTION_START}"
                if at_end
                else f"expected {_PLUGIN} after {_ACTION_START}",
                raw,
            )
            return ""
        body = _skip_space(text, executor + len(_PLUGIN))
        if body >= end:
            at_end = end == len(text)
            calls.fail(
                f"the call was cut off after {_PLUGIN}" if at_end else f"empty {_PLUGIN} action",
                raw,
            )
            return ""
        if not text.startswith("{", body):
            line, column = _line_col(text, body)
            calls.fail(f"expected a JSON object at line {line}, column {column}", raw)
            return ""
        doc = text[:end]  # a prefix: JSON errors report the turn's line and column
        try:
            value, stop = _decode(doc, body)
            call = _call_from_object(value)
        except _Problem as problem:
            if end == len(text) and _json_cut_off(doc, body):
                problem = _cut_off_problem(problem)
            calls.fail(problem, raw)
            return ""
        rest = text[stop:end]
        if rest.strip() and closed:
            line, column = _line_col(text, _skip_space(text, stop))
            calls.fail(
                f"unexpected text after the JSON object at line {line}, column {column}", raw
            )
            return ""
        calls.add(call)
        return rest

    def render(self, calls: Sequence[ParsedCall], content: str = "") -> str:
        """Content, then one action per call, as InternLM's chat template writes them."""
        text = content.strip()
        for call in calls:
            payload = _dumps({"name": call.name, "parameters": call.arguments})
            text += f"{_ACTION_START}{_PLUGIN}\n{payload}{_ACTION_END}"
        return text
