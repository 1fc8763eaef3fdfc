"""Tool-call parsers: turn the text a model emits into :class:`ParsedCall` objects.

Each parser handles one format real models are trained on (see ``docs/tool-call-formats.md``):

============== ===============================================================================
``hermes``     Hermes / Qwen: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks
``llama3_json`` Llama 3.1: ``<|python_tag|>{"name": ..., "parameters": {...}}``, ``;`` between
               calls; also ``<function=name>{...}</function>``
``mistral``    ``[TOOL_CALLS][{"name": ..., "arguments": {...}}]`` and
               ``[TOOL_CALLS]name[CALL_ID]id[ARGS]{...}``
``pythonic``   Llama 3.2+: ``[f(a=1), g(b="x")]`` (read with :mod:`ast`, never evaluated)
``json``       plain JSON (the whole text or a fenced block): an object or a list of objects
``auto``       tries ``hermes``, ``mistral``, ``llama3_json``, ``json`` in turn
============== ===============================================================================

Parsing never raises on model text. A malformed call becomes a :class:`CallError` whose message
names the call (1-based) and, for broken JSON, the line and column in the whole turn:

>>> turn = get_parser("hermes").parse('Checking.<tool_call>{"name": "add", "arguments": {"a": 1}}')
>>> turn.content, turn.calls
('Checking.', [ParsedCall(name='add', arguments={'a': 1}, id=None)])

Work is bounded: a turn over :data:`MAX_TEXT_CHARS` characters is not parsed, at most
:data:`MAX_CALLS` calls are read, and arguments nested deeper than :data:`MAX_DEPTH` are refused.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

from rlenv.chat import message_text
from rlenv.reasoning import reasoning_spans
from rlenv.tools.parsers._base import (
    _DECODER,
    _RAW_CHARS,
    MAX_CALLS,
    MAX_DEPTH,
    MAX_TEXT_CHARS,
    NAME_PATTERN,
    CallError,
    ParsedCall,
    ParsedTurn,
    ParserRegistrationError,
    ToolCallParser,
    UnknownParserError,
    _arguments,
    _blanked,
    _Calls,
    _check_name,
    _check_tool_names,
    _dumps,
    _kind,
    _parse_with_tools,
    _Problem,
    _tidied,
)
from rlenv.tools.parsers._registry import _PARSERS as _PARSERS  # tests unregister their parsers
from rlenv.tools.parsers._registry import get_parser, list_parsers, register_parser
from rlenv.tools.parsers.auto import AutoParser
from rlenv.tools.parsers.deepseek import DeepSeekParser
from rlenv.tools.parsers.gemma import GemmaParser, GemmaToolCodeParser
from rlenv.tools.parsers.glm45 import Glm45Parser
from rlenv.tools.parsers.granite import GraniteParser
from rlenv.tools.parsers.harmony import HarmonyParser
from rlenv.tools.parsers.hermes import HermesParser
from rlenv.tools.parsers.internlm import InternLMParser
from rlenv.tools.parsers.json_format import JsonParser
from rlenv.tools.parsers.kimi_k2 import KimiK2Parser
from rlenv.tools.parsers.llama3 import Llama3JsonParser
from rlenv.tools.parsers.minimax_m2 import MiniMaxM1Parser, MiniMaxM2Parser
from rlenv.tools.parsers.mistral import MistralParser
from rlenv.tools.parsers.phi4 import Phi4MiniParser
from rlenv.tools.parsers.pythonic import PythonicParser
from rlenv.tools.parsers.qwen3_xml import Qwen3XmlParser

__all__ = [
    "MAX_CALLS",
    "MAX_DEPTH",
    "MAX_TEXT_CHARS",
    "NAME_PATTERN",
    "AutoParser",
    "CallError",
    "DeepSeekParser",
    "GemmaParser",
    "GemmaToolCodeParser",
    "Glm45Parser",
    "GraniteParser",
    "HarmonyParser",
    "HermesParser",
    "InternLMParser",
    "JsonParser",
    "KimiK2Parser",
    "Llama3JsonParser",
    "MiniMaxM1Parser",
    "MiniMaxM2Parser",
    "MistralParser",
    "ParsedCall",
    "ParsedTurn",
    "ParserRegistrationError",
    "Phi4MiniParser",
    "PythonicParser",
    "Qwen3XmlParser",
    "ToolCallParser",
    "UnknownParserError",
    "as_assistant_message",
    "get_parser",
    "list_parsers",
    "parse_message",
    "register_parser",
]

# --- Registry ----------------------------------------------------------------------------------

for _parser in (
    HermesParser(), Llama3JsonParser(), MistralParser(), JsonParser(), Qwen3XmlParser(),
    HarmonyParser(), DeepSeekParser("v3"), DeepSeekParser("v31"), PythonicParser(),
    Phi4MiniParser(), GraniteParser(), InternLMParser(), KimiK2Parser(), Glm45Parser(),
    MiniMaxM2Parser(), MiniMaxM1Parser(), GemmaParser("gemma4"), GemmaParser("functiongemma"),
    GemmaToolCodeParser(), AutoParser(),
):  # fmt: skip
    register_parser(_parser)


# --- Messages ----------------------------------------------------------------------------------


def as_assistant_message(
    parsed: ParsedTurn,
    *,
    id_prefix: str = "call",
    limit: int | None = None,
    arguments: Literal["object", "json"] = "object",
) -> dict[str, Any]:
    """The turn as a standard assistant message: its text, and its calls as OpenAI-format
    ``tool_calls``. Calls without an id get ``f"{id_prefix}_{index}"``; ``limit`` keeps only the
    first calls.

    ``arguments="object"`` (most Hugging Face chat templates) writes each call's arguments as a
    JSON object and an empty content as ``None``; ``"json"`` writes the OpenAI wire form, the
    arguments as a JSON string and an empty content as ``""``, for templates that print them as
    text (DeepSeek V3/V3.1, InternLM2: a parser's ``template_arguments`` says which)."""
    calls = parsed.calls if limit is None else parsed.calls[:limit]
    as_json = arguments == "json"
    return {
        "role": "assistant",
        "content": parsed.content or ("" if as_json else None),
        "tool_calls": [
            {
                "id": call.id or f"{id_prefix}_{index}",
                "type": "function",
                "function": {
                    "name": call.name,
                    "arguments": _dumps(call.arguments) if as_json else dict(call.arguments),
                },
            }
            for index, call in enumerate(calls)
        ],
    }


def parse_message(
    message: Mapping[str, Any],
    parser: str | ToolCallParser = "hermes",
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> ParsedTurn:
    """The calls in an assistant message dict.

    If the message has ``tool_calls`` (OpenAI format: ``{"id", "type": "function", "function":
    {"name", "arguments"}}``, arguments a JSON string or a dict), those are the calls and the
    text content is the content. Otherwise the text content is parsed with ``parser`` (a name or
    a parser object); ``tools`` (OpenAI-format schemas) go to parsers whose formats carry
    values as text that only the schema can type (``qwen3_xml``), and a call to a tool not among
    them is an error. Malformed calls become errors; a non-dict ``message`` raises
    ``TypeError`` (a bug in the caller, not model output). The reasoning is the message's
    ``reasoning_content`` (or ``reasoning``) as a server's reasoning parser returns it, else the
    ``<think>`` blocks of its text, which are never content.
    """
    if not isinstance(message, Mapping):
        raise TypeError(f"message must be a dict, got {type(message).__name__}")
    tool_calls = message.get("tool_calls")
    if not tool_calls:
        chosen = get_parser(parser) if isinstance(parser, str) else parser
        return _with_reasoning(_parse_with_tools(chosen, _text_of(message), tools), message)
    calls = _Calls()
    content = _text_of(message)
    spans = reasoning_spans(content)
    thought = [span[2] for span in spans]
    content = _tidied(_blanked(content, spans), content, spans)  # as a parsed turn's content
    if not isinstance(tool_calls, list):
        calls.errors.append(
            CallError(f"'tool_calls' must be a list, got {_kind(tool_calls)}", repr(tool_calls))
        )
        return calls.turn(content)
    size = len(content) + sum(_arguments_size(call) for call in tool_calls)
    if size > MAX_TEXT_CHARS:
        message_ = f"the message is {size:,} characters, over the limit of {MAX_TEXT_CHARS:,}"
        return ParsedTurn("", [], [CallError(message_, content[:_RAW_CHARS])])
    for entry in tool_calls:
        if calls.full:
            calls.overflow(_short_repr(entry))
            break
        try:
            calls.add(_openai_call(entry))
        except _Problem as problem:
            calls.fail(problem, _short_repr(entry))
    return _with_reasoning(_check_tool_names(calls.turn(content, thought), tools), message)


def _with_reasoning(turn: ParsedTurn, message: Mapping[str, Any]) -> ParsedTurn:
    """``turn`` with the message's own reasoning field (vLLM, SGLang) where it has one."""
    field_ = message.get("reasoning_content") or message.get("reasoning")
    if not isinstance(field_, str) or not field_.strip() or field_.strip() in turn.reasoning:
        return turn
    return replace(turn, reasoning="\n".join(filter(None, [field_.strip(), turn.reasoning])))


def _text_of(message: Mapping[str, Any]) -> str:
    try:
        return message_text(message)
    except (TypeError, AttributeError):  # content of an unexpected type: no text
        return ""


def _arguments_size(entry: Any) -> int:
    function = entry.get("function") if isinstance(entry, Mapping) else None
    arguments = function.get("arguments") if isinstance(function, Mapping) else None
    return len(arguments) if isinstance(arguments, str) else 0


def _short_repr(value: Any) -> str:
    try:
        return _dumps(value)[:_RAW_CHARS]
    except (TypeError, ValueError, RecursionError):
        return repr(value)[:_RAW_CHARS]


def _openai_call(entry: Any) -> ParsedCall:
    if not isinstance(entry, Mapping):
        raise _Problem(f"expected an object with a 'function', got {_kind(entry)}")
    function = entry.get("function")
    if not isinstance(function, Mapping):
        if function is None:
            raise _Problem("missing 'function' (an object with 'name' and 'arguments')")
        raise _Problem(f"'function' must be an object, got {_kind(function)}")
    if "name" not in function:
        raise _Problem("missing 'function.name' (the function to call)")
    name = _check_name(function["name"])
    arguments = function.get("arguments")
    if isinstance(arguments, str) and arguments.strip():
        try:
            arguments = _DECODER.decode(arguments)
        except json.JSONDecodeError as error:
            raise _Problem(
                f"invalid JSON in 'function.arguments' at line {error.lineno}, "
                f"column {error.colno}: {error.msg}"
            ) from None
        except RecursionError:
            raise _Problem(
                f"'function.arguments' is nested deeper than {MAX_DEPTH} levels"
            ) from None
        except ValueError as error:
            raise _Problem(f"invalid JSON in 'function.arguments': {error}") from None
    if isinstance(arguments, Mapping):
        arguments = dict(arguments)
    call_id = entry.get("id")
    return ParsedCall(
        name,
        _arguments(arguments, "function.arguments"),
        call_id if isinstance(call_id, str) else None,
    )


def __getattr__(name: str) -> Any:
    """``ToolCall``: the old name of :class:`ParsedCall`, kept for a while with a warning."""
    if name == "ToolCall":
        warnings.warn(
            "ToolCall (rlenv.tools, rlenv.tools.parsers) is now ParsedCall (rlenv.chat.ToolCall "
            "is the chat message's tool-call dict); import ParsedCall instead",
            DeprecationWarning,
            stacklevel=2,
        )
        return ParsedCall
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
