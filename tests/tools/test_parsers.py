"""Tool-call parsers: every format, its errors and bounds, round trips, and fuzzing."""

from __future__ import annotations

import json
import keyword

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlenv.tools import parsers
from rlenv.tools.parsers import (
    MAX_CALLS,
    NAME_PATTERN,
    CallError,
    MistralParser,
    ParsedCall,
    ParsedTurn,
    ParserRegistrationError,
    UnknownParserError,
    get_parser,
    list_parsers,
    parse_message,
    register_parser,
)

JSON_FORMATS = ["hermes", "llama3_json", "mistral", "json"]
ALL_PARSERS = ["hermes", "llama3_json", "mistral", "json", "pythonic", "auto"]

# How each JSON-object format wraps one call object (a JSON string), and how it joins several.
WRAP = {
    "hermes": lambda obj: f"<tool_call>\n{obj}\n</tool_call>",
    "llama3_json": lambda obj: f"<|python_tag|>{obj}",
    "mistral": lambda obj: f"[TOOL_CALLS][{obj}]",
    "json": lambda obj: obj,
}
WRAP_MANY = {
    "hermes": lambda objs: "\n".join(WRAP["hermes"](obj) for obj in objs),
    "llama3_json": lambda objs: "<|python_tag|>" + "; ".join(objs),
    "mistral": lambda objs: "[TOOL_CALLS][" + ", ".join(objs) + "]",
    "json": lambda objs: "[" + ", ".join(objs) + "]",
}


def parse(parser: str, text: str) -> ParsedTurn:
    return get_parser(parser).parse(text)


def only_error(turn: ParsedTurn) -> str:
    assert turn.calls == [], turn
    assert len(turn.errors) == 1, turn
    return turn.errors[0].message


# --- Behaviour shared by the JSON-object formats -----------------------------------------------


@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_single_call(fmt):
    turn = parse(fmt, WRAP[fmt]('{"name": "add", "arguments": {"a": 1, "b": [2, "x"]}}'))
    assert turn == ParsedTurn("", [ParsedCall("add", {"a": 1, "b": [2, "x"]})], [])


@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_key_order_is_free_and_arguments_are_optional(fmt):
    turn = parse(
        fmt, WRAP_MANY[fmt](['{"arguments": {"q": "x"}, "name": "search"}', '{"name": "now"}'])
    )
    assert turn.calls == [ParsedCall("search", {"q": "x"}), ParsedCall("now", {})]
    assert turn.errors == []


@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_parallel_calls_keep_their_order(fmt):
    objs = [json.dumps({"name": f"f{i}", "arguments": {"i": i}}) for i in range(5)]
    turn = parse(fmt, WRAP_MANY[fmt](objs))
    assert turn.calls == [ParsedCall(f"f{i}", {"i": i}) for i in range(5)]
    assert turn.errors == []


@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_double_encoded_arguments_are_decoded(fmt):
    obj = json.dumps({"name": "f", "arguments": json.dumps({"a": {"b": 1}})})
    assert parse(fmt, WRAP[fmt](obj)).calls == [ParsedCall("f", {"a": {"b": 1}})]


@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_missing_name_is_reported_precisely(fmt):
    message = only_error(parse(fmt, WRAP[fmt]('{"arguments": {"a": 1}}')))
    assert message == "tool call 1: missing 'name' (the function to call); keys found: 'arguments'"


@pytest.mark.parametrize("fmt", JSON_FORMATS)
@pytest.mark.parametrize(
    ("arguments", "kind"),
    [("[1, 2]", "a list"), ('"x"', "a string"), ("3", "a number"), ("true", "a boolean")],
)
def test_arguments_must_be_an_object(fmt, arguments, kind):
    message = only_error(parse(fmt, WRAP[fmt](f'{{"name": "f", "arguments": {arguments}}}')))
    assert message == f"tool call 1: 'arguments' must be a JSON object, got {kind}"


@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_double_encoded_non_object_is_an_error(fmt):
    message = only_error(parse(fmt, WRAP[fmt]('{"name": "f", "arguments": "[1, 2]"}')))
    assert message == "tool call 1: 'arguments' must be a JSON object, got a string holding a list"


@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_broken_json_names_the_call_line_and_column_in_the_turn(fmt):
    good = '{"name": "ok", "arguments": {}}'
    bad = '{"name": "f", "arguments": {"a": 1 "b": 2}}'
    text = WRAP_MANY[fmt]([good, bad])
    at = text.index('"b"')  # json stops at the key where it wanted a comma
    line, column = text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)
    turn = parse(fmt, text)
    assert turn.calls == [ParsedCall("ok", {})]
    assert [e.message for e in turn.errors] == [
        f"tool call 2: invalid JSON at line {line}, column {column}: Expecting ',' delimiter"
    ]
    assert turn.errors[0].raw.startswith(bad[:20])


def test_broken_json_exact_message_hermes():
    text = 'Let me add.\n<tool_call>\n{"name": "add", "arguments": {"a": 1 "b": 2}}\n</tool_call>'
    assert only_error(parse("hermes", text)) == (
        "tool call 1: invalid JSON at line 3, column 38: Expecting ',' delimiter"
    )


@pytest.mark.parametrize("fmt", JSON_FORMATS)
@pytest.mark.parametrize("name", ["", "1abc", "has space", "x" * 65, "semi;colon", "ünïcode"])
def test_bad_function_names_are_errors(fmt, name):
    message = only_error(parse(fmt, WRAP[fmt](json.dumps({"name": name, "arguments": {}}))))
    assert message.startswith(f"tool call 1: invalid function name {name!r}")


@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_name_must_be_a_string(fmt):
    message = only_error(parse(fmt, WRAP[fmt]('{"name": 7, "arguments": {}}')))
    assert message == "tool call 1: 'name' must be a string, got a number"


@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_good_names_pass(fmt):
    for name in ["f", "_x", "get_weather", "ns.tool-v2", "A" * 64]:
        assert parse(fmt, WRAP[fmt](json.dumps({"name": name}))).calls == [ParsedCall(name, {})]


@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_too_many_calls_gives_one_error(fmt):
    objs = [json.dumps({"name": "f", "arguments": {"i": i}}) for i in range(MAX_CALLS + 6)]
    turn = parse(fmt, WRAP_MANY[fmt](objs))
    assert turn.calls == [ParsedCall("f", {"i": i}) for i in range(MAX_CALLS)]
    assert [e.message for e in turn.errors] == [
        "more than 64 tool calls in one turn; the calls after the 64th were ignored"
    ]


@pytest.mark.parametrize("fmt", ALL_PARSERS)
def test_huge_text_is_not_parsed(fmt):
    text = WRAP["hermes"]('{"name": "f", "arguments": {}}') + " " * 200_001
    turn = parse(fmt, text)
    assert turn.calls == [] and turn.content == ""
    assert [e.message for e in turn.errors] == [
        f"the turn is {len(text):,} characters, over the limit of 200,000; "
        "it was not parsed for tool calls"
    ]
    assert len(turn.errors[0].raw) == 500


@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_deep_nesting_is_an_error_not_a_crash(fmt):
    deep = '{"a": ' * 101 + "1" + "}" * 101
    message = only_error(parse(fmt, WRAP[fmt](f'{{"name": "f", "arguments": {deep}}}')))
    assert message == "tool call 1: 'arguments' is nested deeper than 100 levels"
    ok = '{"a": ' * 99 + "1" + "}" * 99
    assert parse(fmt, WRAP[fmt](f'{{"name": "f", "arguments": {ok}}}')).calls
    very_deep = "[" * 90_000 + "]" * 90_000
    message = only_error(parse(fmt, WRAP[fmt](f'{{"name": "f", "arguments": {very_deep}}}')))
    assert message == "tool call 1: invalid JSON: nested deeper than 100 levels"


@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_nan_and_huge_integers_are_errors(fmt):
    message = only_error(parse(fmt, WRAP[fmt]('{"name": "f", "arguments": {"x": NaN}}')))
    assert "NaN is not allowed" in message
    big = "9" * 5000
    message = only_error(parse(fmt, WRAP[fmt](f'{{"name": "f", "arguments": {{"x": {big}}}}}')))
    assert message.startswith("tool call 1: invalid JSON: Exceeds the limit")


@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_openai_nesting_inside_a_format_is_accepted(fmt):
    obj = '{"type": "function", "function": {"name": "f", "arguments": {"a": 1}}}'
    assert parse(fmt, WRAP[fmt](obj)).calls == [ParsedCall("f", {"a": 1})]


# --- Hermes ------------------------------------------------------------------------------------


def test_hermes_text_before_between_and_after_is_content():
    text = (
        "<think>I need two tools.</think>\nSure.\n"
        '<tool_call>\n{"name": "a", "arguments": {}}\n</tool_call>\n'
        "middle\n"
        '<tool_call>\n{"name": "b", "arguments": {"x": "<b>"}}\n</tool_call>\nafter'
    )
    turn = parse("hermes", text)
    assert turn.content == "Sure.\nmiddle\nafter"  # the <think> block is the reasoning
    assert turn.calls == [ParsedCall("a", {}), ParsedCall("b", {"x": "<b>"})]


def test_hermes_accepts_an_unclosed_final_block():
    text = '<tool_call>\n{"name": "a"}\n</tool_call>\n<tool_call>\n{"name": "b", "arguments": {}}\n'
    assert parse("hermes", text) == ParsedTurn("", [ParsedCall("a", {}), ParsedCall("b", {})], [])
    # Generation cut mid-JSON: an error that says it was cut off, and where; never a call.
    message = only_error(parse("hermes", '<tool_call>\n{"name": "b", "argu'))
    assert message == (
        "tool call 1: the call was cut off before its JSON ended "
        "(invalid JSON at line 2, column 15: Unterminated string starting at)"
    )
    # The same broken JSON in a closed block is malformed, not cut off.
    message = only_error(parse("hermes", '<tool_call>\n{"name": "b", "argu</tool_call>'))
    assert "cut off" not in message and message.startswith("tool call 1: invalid JSON")


def test_hermes_unclosed_block_followed_by_another_block():
    text = '<tool_call>{"name": "a"}<tool_call>{"name": "b"}</tool_call>'
    assert parse("hermes", text).calls == [ParsedCall("a", {}), ParsedCall("b", {})]


def test_hermes_empty_block_and_trailing_garbage():
    turn = parse("hermes", '<tool_call>\n</tool_call><tool_call>{"name": "f"}}</tool_call>')
    assert [e.message for e in turn.errors] == [
        "tool call 1: empty <tool_call> block",
        "tool call 2: unexpected text after the JSON object at line 2, column 37",
    ]


def test_hermes_without_blocks_is_content_only():
    assert parse("hermes", "  The answer is 4.  ") == ParsedTurn("The answer is 4.", [], [])


def test_hermes_render_is_qwen_style():
    calls = [ParsedCall("a", {"x": 1}), ParsedCall("b", {})]
    assert get_parser("hermes").render(calls, "Hi.") == (
        'Hi.\n<tool_call>\n{"name": "a", "arguments": {"x": 1}}\n</tool_call>\n'
        '<tool_call>\n{"name": "b", "arguments": {}}\n</tool_call>'
    )


# --- Llama 3.1 ---------------------------------------------------------------------------------


def test_llama3_parameters_python_tag_and_end_tokens():
    text = 'Checking.<|python_tag|>{"name": "weather", "parameters": {"city": "Paris"}}<|eom_id|>'
    assert parse("llama3_json", text) == ParsedTurn(
        "Checking.", [ParsedCall("weather", {"city": "Paris"})], []
    )
    bare = '{"name": "weather", "parameters": {"days": "3"}}<|eot_id|>'
    assert parse("llama3_json", bare).calls == [ParsedCall("weather", {"days": "3"})]


def test_llama3_semicolon_separated_calls_and_text_after():
    text = '{"name": "a", "parameters": {}}; {"name": "b", "arguments": {"x": 1}} and then'
    assert parse("llama3_json", text) == ParsedTurn(
        "and then", [ParsedCall("a", {}), ParsedCall("b", {"x": 1})], []
    )


def test_llama3_json_answers_are_not_calls():
    for text in ['{"answer": 42}', '{"x": 1', "The answer is {x}.", "[1, 2]"]:
        assert parse("llama3_json", text) == ParsedTurn(text, [], [])


def test_llama3_function_tag_form():
    text = 'Let me look.<function=get_weather>{"city": "Paris"}</function><function=now></function>'
    assert parse("llama3_json", text) == ParsedTurn(
        "Let me look.", [ParsedCall("get_weather", {"city": "Paris"}), ParsedCall("now", {})], []
    )
    turn = parse("llama3_json", "<function=bad name>{}</function><function=f>[1]</function>")
    assert [e.message for e in turn.errors] == [
        "tool call 1: invalid function name 'bad name': use 1 to 64 letters, digits, '_', '.' "
        "or '-', starting with a letter or '_'",
        "tool call 2: 'arguments' must be a JSON object, got a list",
    ]
    message = only_error(parse("llama3_json", '<function=f>{"a" 1}</function>'))
    assert message == "tool call 1: invalid JSON at line 1, column 18: Expecting ':' delimiter"


def test_llama3_function_tag_too_many():
    text = "<function=f>{}</function>" * (MAX_CALLS + 1)
    turn = parse("llama3_json", text)
    assert len(turn.calls) == MAX_CALLS and len(turn.errors) == 1


# --- Mistral -----------------------------------------------------------------------------------


def test_mistral_list_form_with_ids_and_content():
    text = 'Sure.[TOOL_CALLS][{"name": "f", "arguments": {"a": 1}, "id": "abc123def"}]</s>'
    assert parse("mistral", text) == ParsedTurn(
        "Sure.", [ParsedCall("f", {"a": 1}, "abc123def")], []
    )


def test_mistral_args_form_with_and_without_call_ids():
    text = '[TOOL_CALLS]f[CALL_ID]abc123def[ARGS]{"a": 1}[TOOL_CALLS]g[ARGS]{}</s>'
    assert parse("mistral", text) == ParsedTurn(
        "", [ParsedCall("f", {"a": 1}, "abc123def"), ParsedCall("g", {})], []
    )


def test_mistral_args_form_errors():
    turn = parse("mistral", '[TOOL_CALLS]f "a"[TOOL_CALLS]g[ARGS]{"a" 1}[TOOL_CALLS]h[ARGS]"x"')
    assert [e.message for e in turn.errors] == [
        "tool call 1: expected '[ARGS]' or a JSON object after the function name",
        "tool call 2: invalid JSON at line 1, column 42: Expecting ':' delimiter",
        "tool call 3: 'arguments' must be a JSON object, got a string",
    ]
    many = "".join(f'[TOOL_CALLS]f[ARGS]{{"i": {i}}}' for i in range(MAX_CALLS + 3))
    turn = parse("mistral", many)
    assert len(turn.calls) == MAX_CALLS and len(turn.errors) == 1
    assert only_error(parse("mistral", "[TOOL_CALLS]  ")) == (
        "tool call 1: the call was cut off after [TOOL_CALLS]"  # the text ends there
    )
    turn = parse("mistral", "[TOOL_CALLS][TOOL_CALLS]f[ARGS]{}")
    assert turn.calls == [ParsedCall("f", {})]
    assert [e.message for e in turn.errors] == ["tool call 1: nothing after [TOOL_CALLS]"]


def test_mistral_broken_list_keeps_earlier_calls():
    turn = parse("mistral", '[TOOL_CALLS][{"name": "f"} {"name": "g"}]')
    assert turn.calls == [ParsedCall("f", {})]
    assert [e.message for e in turn.errors] == [
        "after tool call 1: expected ',' or ']' at line 1, column 28; the rest of the list was ignored"
    ]


def test_mistral_truncated_list_keeps_complete_calls():
    turn = parse("mistral", '[TOOL_CALLS][{"name": "f"}, ')
    assert turn == ParsedTurn("", [ParsedCall("f", {})], [])


# --- Plain JSON --------------------------------------------------------------------------------


def test_json_fenced_block_with_text_around():
    text = 'I will search.\n```json\n{"name": "search", "arguments": {"q": "x"}}\n```\nDone.'
    assert parse("json", text) == ParsedTurn(
        "I will search.\nDone.", [ParsedCall("search", {"q": "x"})], []
    )


def test_json_non_call_json_and_broken_non_calls_stay_content():
    for text in ['{"answer": 4}', "[1, 2, 3]", "[Note] this is text", "```json\n[1]\n```", "{x"]:
        assert parse("json", text) == ParsedTurn(text.strip(), [], [])


def test_json_broken_fenced_call_is_an_error():
    text = 'Calling:\n```json\n{"name": "f", "arguments": {"a": }}\n```'
    message = only_error(parse("json", text))
    assert message == "tool call 1: invalid JSON at line 3, column 34: Expecting value"


# --- Pythonic ----------------------------------------------------------------------------------


def test_pythonic_calls_are_read_without_evaluating():
    text = '[get_weather(city="Paris", days=3), tools.now(), f(x=[1, (2, 3)], y={"k": None})]'
    assert parse("pythonic", text) == ParsedTurn(
        "",
        [
            ParsedCall("get_weather", {"city": "Paris", "days": 3}),
            ParsedCall("tools.now", {}),
            ParsedCall("f", {"x": [1, [2, 3]], "y": {"k": None}}),
        ],
        [],
    )


def test_pythonic_errors():
    turn = parse("pythonic", '[f(1), g(a=__import__("os")), h(**kw), i(a={1, 2})]')
    assert [e.message for e in turn.errors] == [
        "tool call 1: positional arguments are not supported; write name=value",
        "tool call 2: argument 'a' must be a literal (string, number, True/False/None, list or dict)",
        "tool call 3: '**' arguments are not supported; write name=value",
        "tool call 4: argument 'a' must be a literal (string, number, True/False/None, list or dict)",
    ]
    message = only_error(parse("pythonic", "[f(a=1, b=]"))
    assert message.startswith("tool call 1: invalid Python call list at line 1, column 11:")
    assert parse("pythonic", "[1, 2]") == ParsedTurn("[1, 2]", [], [])
    assert parse("pythonic", "plain text") == ParsedTurn("plain text", [], [])


def test_pythonic_llama4_tags_and_too_many():
    text = "Let me check.<|python_start|>[f(a=1)]<|python_end|>"
    assert parse("pythonic", text) == ParsedTurn("Let me check.", [ParsedCall("f", {"a": 1})], [])
    many = "[" + ", ".join("f()" for _ in range(MAX_CALLS + 2)) + "]"
    turn = parse("pythonic", many)
    assert len(turn.calls) == MAX_CALLS and len(turn.errors) == 1


# --- Auto --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ('<tool_call>{"name": "f", "arguments": {"a": 1}}</tool_call>', "hermes"),
        ('[TOOL_CALLS][{"name": "f", "arguments": {"a": 1}}]', "mistral"),
        ('[TOOL_CALLS]f[ARGS]{"a": 1}', "mistral"),
        ('<|python_tag|>{"name": "f", "parameters": {"a": 1}}', "llama3_json"),
        ('{"name": "f", "parameters": {"a": 1}}', "llama3_json"),
        ('```json\n{"name": "f", "arguments": {"a": 1}}\n```', "json"),
        ('[{"name": "f", "arguments": {"a": 1}}]', "json"),
    ],
)
def test_auto_picks_the_right_format(text, fmt):
    turn = parse("auto", text)
    assert turn == parse(fmt, text)
    assert turn.calls == [ParsedCall("f", {"a": 1})]


def test_auto_leaves_plain_text_and_json_answers_alone():
    for text in ["The answer is 4.", '{"answer": 4}', "[1, 2]", ""]:
        assert parse("auto", text) == ParsedTurn(text, [], [])


def test_auto_reports_errors_of_the_first_format_that_matches():
    message = only_error(parse("auto", '<tool_call>{"arguments": {}}</tool_call>'))
    assert message.startswith("tool call 1: missing 'name'")


# --- parse_message -----------------------------------------------------------------------------


def openai_call(name, arguments, call_id="call_1"):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_parse_message_openai_tool_calls():
    message = {
        "role": "assistant",
        "content": "Calling.",
        "tool_calls": [
            openai_call("f", '{"a": 1}', "c1"),
            openai_call("g", {"b": [2]}, "c2"),
            openai_call("h", "", "c3"),
            openai_call("i", json.dumps(json.dumps({"z": 0})), "c4"),
        ],
    }
    assert parse_message(message) == ParsedTurn(
        "Calling.",
        [
            ParsedCall("f", {"a": 1}, "c1"),
            ParsedCall("g", {"b": [2]}, "c2"),
            ParsedCall("h", {}, "c3"),
            ParsedCall("i", {"z": 0}, "c4"),
        ],
        [],
    )


def test_parse_message_openai_errors():
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            openai_call("f", '{"a": 1 "b": 2}'),
            {"id": "x", "type": "function", "function": {"arguments": "{}"}},
            openai_call("g", "[1]"),
            openai_call("bad name", "{}"),
            "not a call",
            {"id": "y"},
            openai_call("ok", "{}", "c7"),
        ],
    }
    turn = parse_message(message)
    assert turn.calls == [ParsedCall("ok", {}, "c7")]
    assert [e.message for e in turn.errors] == [
        "tool call 1: invalid JSON in 'function.arguments' at line 1, column 9: "
        "Expecting ',' delimiter",
        "tool call 2: missing 'function.name' (the function to call)",
        "tool call 3: 'function.arguments' must be a JSON object, got a list",
        "tool call 4: invalid function name 'bad name': use 1 to 64 letters, digits, '_', '.' "
        "or '-', starting with a letter or '_'",
        "tool call 5: expected an object with a 'function', got a string",
        "tool call 6: missing 'function' (an object with 'name' and 'arguments')",
    ]
    assert all(len(e.raw) <= 500 for e in turn.errors)


def test_parse_message_bounds():
    many = {"role": "assistant", "tool_calls": [openai_call("f", "{}")] * (MAX_CALLS + 1)}
    turn = parse_message(many)
    assert len(turn.calls) == MAX_CALLS and len(turn.errors) == 1
    huge = {"role": "assistant", "tool_calls": [openai_call("f", " " * 200_001)]}
    assert only_error(parse_message(huge)).startswith("the message is 200,001 characters")


def test_parse_message_without_tool_calls_parses_the_text():
    text = '<tool_call>{"name": "f", "arguments": {}}</tool_call>'
    assert parse_message({"role": "assistant", "content": text}).calls == [ParsedCall("f", {})]
    parts = {"role": "assistant", "content": [{"type": "text", "text": text}], "tool_calls": []}
    assert parse_message(parts).calls == [ParsedCall("f", {})]
    mistral = {"role": "assistant", "content": '[TOOL_CALLS]f[ARGS]{"a": 1}'}
    assert parse_message(mistral, "mistral").calls == [ParsedCall("f", {"a": 1})]
    assert parse_message(mistral, MistralParser()).calls == [ParsedCall("f", {"a": 1})]
    assert parse_message({"role": "assistant", "content": None}) == ParsedTurn("", [], [])
    with pytest.raises(TypeError):
        parse_message("not a dict")  # type: ignore[arg-type]


# --- Registry ----------------------------------------------------------------------------------


class Shouting:
    """A toy format: CALL name."""

    name = "test_shouting"

    def parse(self, text: str) -> ParsedTurn:
        if text.startswith("CALL "):
            return ParsedTurn("", [ParsedCall(text[5:].strip(), {})], [])
        return ParsedTurn(text.strip(), [], [])

    def render(self, calls, content=""):
        return "".join(f"CALL {call.name}" for call in calls) or content


def test_register_a_custom_parser():
    parser = Shouting()
    try:
        register_parser(parser)
        register_parser(parser)  # the same object again is fine
        assert "test_shouting" in list_parsers()
        assert get_parser("test_shouting") is parser
        assert parse_message({"role": "assistant", "content": "CALL f"}, "test_shouting").calls
        with pytest.raises(ParserRegistrationError, match="already registered"):
            register_parser(Shouting())
        replacement = Shouting()
        register_parser(replacement, replace=True)
        assert get_parser("test_shouting") is replacement
    finally:
        parsers._PARSERS.pop("test_shouting", None)


def test_register_refuses_non_parsers():
    with pytest.raises(ParserRegistrationError, match="name"):
        register_parser(object())  # type: ignore[arg-type]


def test_unknown_parser_lists_the_known_ones():
    with pytest.raises(KeyError) as caught:
        get_parser("qwen9")
    assert isinstance(caught.value, UnknownParserError)
    message = str(caught.value)
    assert message.startswith("no tool-call parser named 'qwen9'; known parsers: auto, ")
    known = message.split("known parsers: ", 1)[1].split(", ")
    assert known == sorted(known)  # (other tests and modules register parsers of their own)
    for name in ("deepseek_v3", "harmony", "hermes", "json", "llama3_json", "mistral"):
        assert name in known


# --- Round trips (hypothesis) ------------------------------------------------------------------

# A format cannot carry its own markers inside argument strings (vLLM's parsers cannot either),
# so generated text avoids '<', '[' and '`'.
_SAFE_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="<[`"), max_size=12
)
_CONTENT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="<>[]{}`"), max_size=30
)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _SAFE_TEXT,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(_SAFE_TEXT, children, max_size=3)
    ),
    max_leaves=8,
)
_NAMES = st.from_regex(NAME_PATTERN, fullmatch=True)
_CALL_IDS = st.none() | st.from_regex(r"[A-Za-z0-9]{9}", fullmatch=True)
_CALLS = st.lists(
    st.builds(ParsedCall, _NAMES, st.dictionaries(_SAFE_TEXT, _JSON, max_size=4), _CALL_IDS),
    max_size=4,
)
_PY_NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True).filter(
    lambda name: not keyword.iskeyword(name)
)
_PY_CALLS = st.lists(
    st.builds(ParsedCall, _PY_NAME, st.dictionaries(_PY_NAME, _JSON, max_size=4)), max_size=4
)
_ROUND_TRIP_PARSERS = {
    "hermes": get_parser("hermes"),
    "llama3_json": get_parser("llama3_json"),
    "mistral-args": MistralParser("args"),
    "mistral-list": MistralParser("list"),
    "json": get_parser("json"),
    "auto": get_parser("auto"),
}
_KEEPS_IDS = {"mistral-args", "mistral-list"}


@pytest.mark.parametrize("fmt", list(_ROUND_TRIP_PARSERS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls=_CALLS, content=_CONTENT)
def test_render_then_parse_round_trips(fmt, calls, content):
    parser = _ROUND_TRIP_PARSERS[fmt]
    expected = calls if fmt in _KEEPS_IDS else [ParsedCall(c.name, c.arguments) for c in calls]
    assert parser.parse(parser.render(calls, content)) == ParsedTurn(content.strip(), expected, [])


@settings(max_examples=60, deadline=None)
@given(calls=_PY_CALLS, content=_CONTENT)
def test_pythonic_render_then_parse_round_trips(calls, content):
    parser = get_parser("pythonic")
    assert parser.parse(parser.render(calls, content)) == ParsedTurn(content.strip(), calls, [])


def test_pythonic_render_refuses_non_identifier_keys():
    with pytest.raises(ValueError, match="cannot be written"):
        get_parser("pythonic").render([ParsedCall("f", {"a b": 1})])


# --- Fuzzing: never raise, always well-typed ---------------------------------------------------

_INSERTS = [
    "{", "}", "[", "]", '"', "'", ":", ",", ";", "\\", "\n", "(", ")", "=", "NaN", "```json\n",
    "<tool_call>", "</tool_call>", "[TOOL_CALLS]", "[ARGS]", "[CALL_ID]", "<|python_tag|>",
    "<|eom_id|>", "<function=", "</function>", "<|python_start|>", "<|python_end|>",
]  # fmt: skip
_RENDERERS = [*_ROUND_TRIP_PARSERS.values(), get_parser("pythonic")]


@st.composite
def _mutated_renders(draw):
    renderer = draw(st.sampled_from(_RENDERERS))
    calls = draw(_PY_CALLS if renderer.name == "pythonic" else _CALLS)
    text = renderer.render(calls, draw(_CONTENT))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["truncate", "insert", "delete", "random"]))
        if action == "truncate":
            text = text[:at]
        elif action == "insert":
            text = text[:at] + draw(st.sampled_from(_INSERTS)) + text[at:]
        elif action == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 5)) :]
        else:
            text = text[:at] + draw(st.text(max_size=5)) + text[at:]
    return text


def assert_well_formed(turn):
    assert isinstance(turn, ParsedTurn)
    assert isinstance(turn.content, str) and turn.content == turn.content.strip()
    assert isinstance(turn.calls, list) and isinstance(turn.errors, list)
    assert len(turn.calls) <= MAX_CALLS
    for call in turn.calls:
        assert isinstance(call, ParsedCall)
        assert isinstance(call.name, str) and NAME_PATTERN.fullmatch(call.name)
        assert isinstance(call.arguments, dict)
        assert call.id is None or isinstance(call.id, str)
        json.dumps(call.arguments, allow_nan=False)  # plain JSON data, no NaN
    for error in turn.errors:
        assert isinstance(error, CallError)
        assert isinstance(error.message, str) and error.message
        assert isinstance(error.raw, str) and len(error.raw) <= 500
        assert "parser failed" not in error.message, error  # the safety net caught a bug


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(st.text(max_size=200), _mutated_renders()))
def test_parsers_never_raise_on_any_text(text):
    for name in ALL_PARSERS:
        assert_well_formed(get_parser(name).parse(text))


@settings(max_examples=60, deadline=None)
@given(message=st.fixed_dictionaries({"role": st.just("assistant")}, optional={
    "content": st.none() | st.text(max_size=50),
    "tool_calls": st.lists(st.one_of(
        st.fixed_dictionaries({"id": st.text(max_size=5), "function": st.fixed_dictionaries(
            {}, optional={"name": st.text(max_size=10) | _NAMES,
                          "arguments": st.text(max_size=30) | _JSON})}),
        _JSON,
    ), max_size=3),
}))  # fmt: skip
def test_parse_message_never_raises_on_model_output(message):
    assert_well_formed(parse_message(message, "auto"))


def test_the_old_name_toolcall_still_imports_with_a_deprecation_warning():
    import rlenv.tools
    import rlenv.tools.parsers

    for module in (rlenv.tools, rlenv.tools.parsers):
        with pytest.warns(DeprecationWarning, match="ParsedCall"):
            assert module.ToolCall is ParsedCall
        assert "ToolCall" not in module.__all__
    with pytest.raises(AttributeError):
        rlenv.tools.NoSuchThing  # noqa: B018
