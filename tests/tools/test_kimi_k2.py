"""The ``kimi_k2`` parser (Kimi-K2 Instruct and Thinking): calls in a tool-calls section, each
``<|tool_call_begin|>functions.NAME:IDX<|tool_call_argument_begin|>{json}<|tool_call_end|>``.

The layout is the one Kimi-K2's chat template renders (moonshotai/Kimi-K2-Instruct
``chat_template.jinja``) and Moonshot's ``docs/tool_call_guidance.md`` (github.com/MoonshotAI/
Kimi-K2) describes: the id ``functions.{func_name}:{idx}``, from which the name is read.
"""

from __future__ import annotations

import json
import string

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlenv.tools.parsers import (
    MAX_CALLS,
    AutoParser,
    ParsedCall,
    get_parser,
    parse_message,
)

KIMI = get_parser("kimi_k2")
SB, SE = "<|tool_calls_section_begin|>", "<|tool_calls_section_end|>"
CB, CE, AB = "<|tool_call_begin|>", "<|tool_call_end|>", "<|tool_call_argument_begin|>"


def vllm_tool(tool_id: str, args: str) -> str:
    """vLLM's test helper ``_tool`` (tests/tool_parsers/test_kimi_k2_tool_parser.py): a space
    between the id and ``<|tool_call_argument_begin|>``."""
    return f"{CB}{tool_id} {AB}{args}{CE}"


def vllm_wrap(*calls: str) -> str:
    return SB + "".join(calls) + SE


# --- Real outputs, each from a public source ----------------------------------------------------

VLLM = "vllm-project/vllm tests/tool_parsers/test_kimi_k2_tool_parser.py"
SGLANG = "sgl-project/sglang test/srt/test_function_call_parser.py (TestKimiK2Detector)"

REAL = [
    pytest.param(  # VLLM: single_tool_call
        "I'll check. " + vllm_wrap(vllm_tool("functions.get_weather:0", '{"city": "Beijing"}')),
        "I'll check.",
        [ParsedCall("get_weather", {"city": "Beijing"}, "functions.get_weather:0")],
        id="vllm-single",
    ),
    pytest.param(  # VLLM: three_tool_calls
        "Multiple tasks. "
        + vllm_wrap(
            vllm_tool("functions.get_weather:0", '{"city": "New York"}'),
            vllm_tool("functions.get_news:1", '{"topic": "technology"}'),
            vllm_tool(
                "functions.send_email:2", '{"to": "user@example.com", "subject": "Daily Update"}'
            ),
        ),
        "Multiple tasks.",
        [
            ParsedCall("get_weather", {"city": "New York"}, "functions.get_weather:0"),
            ParsedCall("get_news", {"topic": "technology"}, "functions.get_news:1"),
            ParsedCall(
                "send_email",
                {"to": "user@example.com", "subject": "Daily Update"},
                "functions.send_email:2",
            ),
        ],
        id="vllm-three-parallel",
    ),
    pytest.param(  # VLLM: angle_brackets_in_json
        "Process HTML. "
        + vllm_wrap(vllm_tool("functions.process_html:0", '{"html": "<div>content</div>"}')),
        "Process HTML.",
        [ParsedCall("process_html", {"html": "<div>content</div>"}, "functions.process_html:0")],
        id="vllm-angle-brackets",
    ),
    pytest.param(  # VLLM: multiline_json
        "Formatted. "
        + vllm_wrap(
            vllm_tool("functions.process_data:0", '{\n  "name": "test",\n  "value": 123\n}')
        ),
        "Formatted.",
        [ParsedCall("process_data", {"name": "test", "value": 123}, "functions.process_data:0")],
        id="vllm-multiline-json",
    ),
    pytest.param(  # VLLM: no_functions_prefix
        "No prefix. " + vllm_wrap(vllm_tool("get_weather:0", '{"city": "Tokyo"}')),
        "No prefix.",
        [ParsedCall("get_weather", {"city": "Tokyo"}, "get_weather:0")],
        id="vllm-no-prefix",
    ),
    pytest.param(  # VLLM: empty_arguments
        "Empty args. " + vllm_wrap(vllm_tool("functions.test:0", "{}")),
        "Empty args.",
        [ParsedCall("test", {}, "functions.test:0")],
        id="vllm-empty-arguments",
    ),
    pytest.param(  # VLLM: test_content_after_tool_section (streamed deltas, joined)
        "Before. "
        + SB
        + CB
        + "functions.get_weather:0 "
        + AB
        + '{"city": "Tokyo"} '
        + CE
        + SE
        + " After tools.",
        "Before.\nAfter tools.",  # vLLM's streaming drops it; text is never dropped here
        [ParsedCall("get_weather", {"city": "Tokyo"}, "functions.get_weather:0")],
        id="vllm-content-after-section",
    ),
    pytest.param(  # VLLM: test_noise_between_markers_suppressed (deltas joined)
        "Reasoning. "
        + SB
        + " spurious noise "
        + CB
        + "functions.test:0 "
        + AB
        + '{"k": "v"} '
        + CE
        + SE,
        "Reasoning.\nspurious noise",
        [ParsedCall("test", {"k": "v"}, "functions.test:0")],
        id="vllm-noise-in-section",
    ),
    pytest.param(  # SGLANG: test_multiple_tool_calls (the template's layout: no whitespace)
        '<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>{"city": "Paris"}<|tool_call_end|><|tool_call_begin|>functions.get_tourist_attractions:1<|tool_call_argument_begin|>{"city": "London"}<|tool_call_end|><|tool_calls_section_end|>',
        "",
        [
            ParsedCall("get_weather", {"city": "Paris"}, "functions.get_weather:0"),
            ParsedCall(
                "get_tourist_attractions", {"city": "London"}, "functions.get_tourist_attractions:1"
            ),
        ],
        id="sglang-multiple",
    ),
    pytest.param(  # VLLM: test_empty_tool_section (deltas joined): no call, no error
        "Reasoning. " + SB + SE,
        "Reasoning.",
        [],
        id="vllm-empty-section",
    ),
]


@pytest.mark.parametrize(("text", "content", "calls"), REAL)
def test_real_outputs_parse_to_the_expected_calls(text, content, calls):
    turn = KIMI.parse(text)
    assert (turn.content, turn.calls, turn.errors) == (content, calls, [])


MALFORMED = [
    pytest.param(  # VLLM: test_invalid_funcall_id_skipped (vLLM drops the call silently)
        "Help. "
        + SB
        + vllm_tool("functions.invalid.0", '{"city": "Beijing"}')
        + vllm_tool("functions.valid:1", '{"city": "Shanghai"}')
        + SE,
        [ParsedCall("valid", {"city": "Shanghai"}, "functions.valid:1")],
        "tool call 1: call id 'functions.invalid.0' is not of the form functions.NAME:INDEX",
        id="vllm-invalid-id",
    ),
    pytest.param(  # VLLM: test_invalid_json_still_extracted (vLLM passes the broken JSON on)
        "Help. "
        + SB
        + vllm_tool("functions.bad:0", '{"city": "Beijing"')
        + vllm_tool("functions.good:1", '{"city": "Shanghai"}')
        + SE,
        [ParsedCall("good", {"city": "Shanghai"}, "functions.good:1")],
        "tool call 1: invalid JSON at line 1",
        id="vllm-invalid-json",
    ),
    pytest.param(  # VLLM: test_bare_counter (vLLM guesses the name from the tools' schemas)
        "Let me check. " + vllm_wrap(vllm_tool("0", '{"city": "Tokyo", "unit": "celsius"}')),
        [],
        "tool call 1: call id '0' is not of the form functions.NAME:INDEX",
        id="vllm-bare-counter",
    ),
    pytest.param(  # VLLM: test_truncated_tool_call_no_end_marker (deltas joined)
        "I'll check. " + SB + CB + "functions.get_weather:0 " + AB + '{"city": "Bei',
        [],
        "tool call 1: the call was cut off before its JSON ended",
        id="vllm-cut-off",
    ),
    pytest.param(  # SGLANG: test_partial_tool_call (chunks joined)
        '<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>{"city": "Paris"',
        [],
        "tool call 1: the call was cut off before its JSON ended",
        id="sglang-partial",
    ),
    pytest.param(  # SGLANG: test_invalid_tool_call (no <|tool_call_begin|>)
        'invalid_tool:0<|tool_call_argument_begin|>{"city": "Paris"}<|tool_call_end|><|tool_calls_section_end|>',
        [],
        "tool call 1: <|tool_call_argument_begin|> without a <|tool_call_begin|> before it",
        id="sglang-no-call-begin",
    ),
]


@pytest.mark.parametrize(("text", "calls", "error"), MALFORMED)
def test_real_malformed_outputs_are_errors_not_silent(text, calls, error):
    turn = KIMI.parse(text)
    assert turn.calls == calls
    assert [e.message[: len(error)] for e in turn.errors] == [error]
    assert all(marker not in turn.content for marker in (SB, SE, CB, CE))


# --- Policies -----------------------------------------------------------------------------------


def test_a_complete_call_whose_end_markers_are_missing_is_read():
    text = "Checking." + SB + CB + "functions.f:0" + AB + '{"a": 1}'
    assert KIMI.parse(text).calls == [ParsedCall("f", {"a": 1}, "functions.f:0")]
    text = "Checking." + SB + CB + "functions.f:0" + AB + '{"a": 1}' + CE
    assert KIMI.parse(text).calls == [ParsedCall("f", {"a": 1}, "functions.f:0")]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (SB + CB + "functions.get_wea", "the call was cut off before its arguments"),
        (SB + CB + "functions.f:0" + AB, "the call was cut off before its JSON ended"),
        (SB + CB + "functions.f:0" + AB + '{"a": [1, 2', "the call was cut off before its JSON"),
        ("Let me call it." + SB, "the text was cut off right after <|tool_calls_section_begin|>"),
    ],
)
def test_a_call_cut_off_inside_its_id_or_arguments_is_an_error_saying_so(text, error):
    turn = KIMI.parse(text)
    assert turn.calls == [] and len(turn.errors) == 1
    assert turn.errors[0].message.startswith(f"tool call 1: {error}")


def test_a_first_complete_call_is_kept_when_the_second_is_cut_off():
    text = SB + CB + "functions.f:0" + AB + '{"a": 1}' + CE + CB + "functions.g:1" + AB + '{"b": "x'
    turn = KIMI.parse(text)
    assert turn.calls == [ParsedCall("f", {"a": 1}, "functions.f:0")]
    assert [e.message.split(":")[0] for e in turn.errors] == ["tool call 2"]
    assert "cut off" in turn.errors[0].message


def test_variants_seen_in_the_wild():
    # The singular section spelling (accepted by vLLM's kimi_k2 parser and the tinker
    # cookbook's Kimi renderer); whitespace and newlines around ids and arguments; dotted names.
    text = (
        "Sure.<|tool_call_section_begin|>\n"
        + CB + "\n functions.get_weather:0 \n" + AB + '\n {"city": "Oslo"} \n' + CE + "\n"
        + CB + "functions.fs.read_file:1" + AB + '{"path": "/tmp/a"}' + CE
        + "\n<|tool_call_section_end|>"
    )  # fmt: skip
    turn = KIMI.parse(text)
    assert turn.errors == [] and turn.content == "Sure."
    assert turn.calls == [
        ParsedCall("get_weather", {"city": "Oslo"}, "functions.get_weather:0"),
        ParsedCall("fs.read_file", {"path": "/tmp/a"}, "functions.fs.read_file:1"),
    ]


def test_escaped_quotes_newlines_and_nested_arguments():
    arguments = {"code": 'print("hi")\nx = "a\\"b"', "o": {"list": [1, {"d": None}], "t": True}}
    text = SB + CB + "functions.run:3" + AB + json.dumps(arguments) + CE + SE
    assert KIMI.parse(text).calls == [ParsedCall("run", arguments, "functions.run:3")]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("functions.f:0" + AB + '{"a": 1} trailing', "unexpected text after the arguments"),
        ("functions.f:0" + AB + "[1, 2]", "'arguments' must be a JSON object, got a list"),
        ("functions.f:0" + AB + '"text"', "'arguments' must be a JSON object, got a string"),
        ("functions.f:0" + AB + "{'a': 1}", "invalid JSON"),
        ("functions.f:0" + AB + '{"a": NaN}', "invalid JSON: NaN is not allowed"),
        ("functions.9bad:0" + AB + "{}", "invalid function name '9bad'"),
        ("functions.get weather:0" + AB + "{}", "invalid function name 'get weather'"),
        ("functions.f:0" + '{"a": 1}', "no <|tool_call_argument_begin|> between"),
        ("functions.f" + AB + "{}", "call id 'functions.f' is not of the form"),
    ],
)
def test_malformed_calls_are_errors_and_the_others_are_kept(body, error):
    good = CB + "functions.g:1" + AB + '{"x": 2}' + CE
    turn = KIMI.parse("Text." + SB + CB + body + CE + good + SE)
    assert turn.calls == [ParsedCall("g", {"x": 2}, "functions.g:1")]
    assert len(turn.errors) == 1 and turn.errors[0].message.startswith(f"tool call 1: {error}")
    assert turn.content == "Text."


def test_a_double_encoded_arguments_string_is_decoded():
    text = SB + CB + "functions.f:0" + AB + json.dumps(json.dumps({"a": 1})) + CE + SE
    assert KIMI.parse(text).calls == [ParsedCall("f", {"a": 1}, "functions.f:0")]


def test_unknown_tools_are_errors_when_the_schemas_are_given():
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    text = SB + CB + "functions.get_wether:0" + AB + "{}" + CE + SE
    turn = KIMI.parse(text, tools=tools)
    assert turn.calls == [] and "unknown tool 'get_wether'" in turn.errors[0].message
    assert "did you mean 'get_weather'" in turn.errors[0].message
    turn = parse_message({"role": "assistant", "content": text}, "kimi_k2", tools=tools)
    assert turn.calls == [] and len(turn.errors) == 1


def test_more_than_max_calls_is_one_error_and_the_first_calls_are_kept():
    text = SB + "".join(CB + f"functions.f:{i}" + AB + "{}" + CE for i in range(MAX_CALLS + 5))
    turn = KIMI.parse(text + SE)
    assert len(turn.calls) == MAX_CALLS
    assert len(turn.errors) == 1 and turn.errors[0].message.startswith(f"more than {MAX_CALLS}")


def test_text_without_calls_is_content():
    text = "No tools needed: the answer is 4. A section looks like <|tool_calls_section_begin|>."
    turn = KIMI.parse("Plain answer with {json} and functions.f:0 in it.")
    assert (turn.content, turn.calls, turn.errors) == (
        "Plain answer with {json} and functions.f:0 in it.",
        [],
        [],
    )
    assert KIMI.parse(text).calls == []


# --- Reasoning (Kimi-K2-Thinking writes its calls inside its reasoning span) --------------------


def test_kimi_k2_thinking_calls_inside_the_reasoning_are_calls():
    assert KIMI.calls_in_reasoning is True
    call = CB + "functions.search:0" + AB + '{"q": "weather Paris"}' + CE
    # Closed reasoning block with the call inside it, then the answer text.
    turn = KIMI.parse("<think>I should search." + SB + call + SE + "</think>Searching now.")
    assert turn.calls == [ParsedCall("search", {"q": "weather Paris"}, "functions.search:0")]
    assert turn.content == "Searching now." and turn.reasoning.startswith("I should search.")
    # A reasoning block the call ends (no </think>: generation stopped at the call).
    turn = KIMI.parse("<think>I should search." + SB + call + SE)
    assert turn.calls == [ParsedCall("search", {"q": "weather Paris"}, "functions.search:0")]
    assert turn.content == ""


# --- Render ---------------------------------------------------------------------------------------

# The assistant tool-call part of Kimi-K2's chat template, verbatim (moonshotai/Kimi-K2-Instruct
# chat_template.jinja, as quoted in vLLM/SGLang issue threads and forks).
KIMI_TEMPLATE = """\
{%- if message['role'] == 'assistant' and message.get('tool_calls') -%}
    {%- if message['content'] -%}{{ message['content'] }}{%- endif -%}
    <|tool_calls_section_begin|>
    {%- for tool_call in message['tool_calls'] -%}
      {%- set formatted_id = tool_call['id'] -%}
      <|tool_call_begin|>{{ formatted_id }}<|tool_call_argument_begin|>{% if tool_call['function']['arguments'] is string %}{{ tool_call['function']['arguments'] }}{% else %}{{ tool_call['function']['arguments'] | tojson }}{% endif %}<|tool_call_end|>
    {%- endfor -%}
    <|tool_calls_section_end|>
{%- endif -%}"""


def hf_template(source: str) -> jinja2.Template:
    """A template compiled the way transformers compiles chat templates."""
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = lambda value: json.dumps(value, ensure_ascii=False)
    return env.from_string(source)


def test_render_writes_what_the_chat_template_writes():
    calls = [
        ParsedCall("get_weather", {"city": "Zürich"}, "functions.get_weather:0"),
        ParsedCall("get_news", {"topic": "a\nb", "n": [1, 2]}, "functions.get_news:1"),
    ]
    message = {
        "role": "assistant",
        "content": "Checking both.",
        "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls
        ],
    }
    expected = hf_template(KIMI_TEMPLATE).render(message=message)
    assert KIMI.render(calls, "Checking both.") == expected
    assert KIMI.parse(expected).calls == calls


def test_render_gives_calls_without_a_kimi_id_one():
    calls = [ParsedCall("f", {}), ParsedCall("g", {"a": 1}, "call_abc"), ParsedCall("h", {}, "h:7")]
    turn = KIMI.parse(KIMI.render(calls))
    assert [c.id for c in turn.calls] == ["functions.f:0", "functions.g:1", "h:7"]
    assert KIMI.render([], "  just text ") == "just text"


# Strings without a reasoning marker: the base parser sets <think> blocks apart before any
# format reads the text, wherever they stand (inside a JSON string too).
_STRINGS = st.text(max_size=12).filter(lambda s: "think>" not in s and "THINK]" not in s)
_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,11}(\.[a-z]{1,4})?", fullmatch=True)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | _STRINGS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_STRINGS, inner, max_size=3),
    max_leaves=8,
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    calls=st.lists(
        st.tuples(
            _NAMES,
            st.dictionaries(_STRINGS, _JSON, max_size=4),
            st.sampled_from(["functions.", ""]),
            st.integers(0, 999),
        ),
        max_size=4,
    ),
    content=st.text(alphabet=string.ascii_letters + " .,!?\n", max_size=30),
)
def test_parse_of_render_is_the_identity(calls, content):
    parsed = [ParsedCall(name, args, f"{prefix}{name}:{i}") for name, args, prefix, i in calls]
    turn = KIMI.parse(KIMI.render(parsed, content))
    assert turn.errors == [] and turn.calls == parsed
    assert turn.content == content.strip()


_PIECES = [SB, SE, CB, CE, AB, "<|tool_call_section_begin|>", "functions.f:0", "g:1", "0",
           '{"a": 1}', '{"a": "', "}", "[", "\\", '"', "\n", " ", "x", "<think>", "</think>"]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=24).map("".join))
def test_fuzzed_markup_never_raises(text):
    turn = KIMI.parse(text)
    assert not any("parser failed" in error.message for error in turn.errors)
    assert all(isinstance(call.arguments, dict) for call in turn.calls)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_fuzzed_text_never_raises(text):
    turn = KIMI.parse(text)
    assert not any("parser failed" in error.message for error in turn.errors)


# --- Other formats ------------------------------------------------------------------------------


def test_no_other_parser_reads_kimi_calls_and_auto_finds_them_where_the_lead_puts_kimi():
    text = REAL[1].values[0]
    for name in ("hermes", "qwen3_xml", "harmony", "deepseek_v3", "mistral", "llama3_json"):
        assert get_parser(name).parse(text).calls == [], name
    order = ["harmony", "deepseek_v3", "kimi_k2", "qwen3_xml", "hermes", "mistral",
             "llama3_json", "json"]  # fmt: skip
    auto = AutoParser([get_parser(name) for name in order])
    assert auto.parse(text).calls == REAL[1].values[2]
    hermes = '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>'
    assert KIMI.parse(hermes).calls == [] and auto.parse(hermes).calls == [
        ParsedCall("f", {"a": 1})
    ]
