"""The ``glm45`` parser (GLM-4.5, 4.6, 4.7): ``<tool_call>NAME`` then ``<arg_key>``/``<arg_value>``
pairs, values typed by the tools' schemas.

The layout is the one GLM-4.5's chat template renders (zai-org/GLM-4.5 ``chat_template.jinja``,
quoted below) and vLLM's ``glm45``/``glm47`` and SGLang's ``glm45`` parsers read.
"""

from __future__ import annotations

import json
import string

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlenv.tools.parsers import MAX_CALLS, AutoParser, ParsedCall, get_parser, parse_message

GLM = get_parser("glm45")
WEATHER_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "state": {"type": "string"},
                    "unit": {"type": "string"},
                    "date": {"type": "string"},
                    "days": {"type": "integer"},
                },
            },
        },
    }
    for name in ("get_weather", "get_current_weather", "get_current_time", "get_current_date")
]
TODO_TOOLS = [  # SGLang's test_array_argument_with_escaped_json schema
    {
        "type": "function",
        "function": {
            "name": "todo_write",
            "parameters": {"type": "object", "properties": {"todos": {"type": "array"}}},
        },
    }
]

# --- Real outputs, each from a public source ----------------------------------------------------

VLLM45 = "vllm-project/vllm tests/tool_parsers/test_glm4_moe_tool_parser.py"
VLLM47 = "vllm-project/vllm tests/tool_parsers/test_glm47_moe_tool_parser.py"
SGLANG = "sgl-project/sglang test/srt/test_function_call_parser.py (TestGlm4MoeDetector)"

DALLAS = {"city": "Dallas", "state": "TX", "unit": "fahrenheit"}
REAL = [
    pytest.param(  # VLLM45: single_tool_call (GLM-4.5 output as vLLM's test writes it, indented)
        """<tool_call>get_current_weather
    <arg_key>city</arg_key>
    <arg_value>Dallas</arg_value>
    <arg_key>state</arg_key>
    <arg_value>TX</arg_value>
    <arg_key>unit</arg_key>
    <arg_value>fahrenheit</arg_value>
    </tool_call>""",
        "",
        [ParsedCall("get_current_weather", DALLAS)],
        id="vllm45-single",
    ),
    pytest.param(  # VLLM45: multiple_tool_calls
        """<tool_call>get_current_weather
    <arg_key>city</arg_key>
    <arg_value>Dallas</arg_value>
    <arg_key>state</arg_key>
    <arg_value>TX</arg_value>
    <arg_key>unit</arg_key>
    <arg_value>fahrenheit</arg_value>
    </tool_call>
    <tool_call>get_current_weather
    <arg_key>city</arg_key>
    <arg_value>Orlando</arg_value>
    <arg_key>state</arg_key>
    <arg_value>FL</arg_value>
    <arg_key>unit</arg_key>
    <arg_value>fahrenheit</arg_value>
    </tool_call>""",
        "",
        [
            ParsedCall("get_current_weather", DALLAS),
            ParsedCall(
                "get_current_weather", {"city": "Orlando", "state": "FL", "unit": "fahrenheit"}
            ),
        ],
        id="vllm45-parallel",
    ),
    pytest.param(  # VLLM45: tool_call_with_content_before
        """I'll help you check the weather. <tool_call>get_current_weather
    <arg_key>city</arg_key>
    <arg_value>Seattle</arg_value>
    <arg_key>state</arg_key>
    <arg_value>WA</arg_value>
    <arg_key>unit</arg_key>
    <arg_value>celsius</arg_value>
    </tool_call>""",
        "I'll help you check the weather.",
        [ParsedCall("get_current_weather", {"city": "Seattle", "state": "WA", "unit": "celsius"})],
        id="vllm45-content-before",
    ),
    pytest.param(  # VLLM45: test_extract_tool_calls_with_thinking_tags
        """<think>I want to get the weather.</think>

I will help you get the weather.
<tool_call>get_weather
<arg_key>city</arg_key>
<arg_value>Beijing</arg_value>
<arg_key>date</arg_key>
<arg_value>2025-08-01</arg_value>
</tool_call>""",
        "I will help you get the weather.",
        [ParsedCall("get_weather", {"city": "Beijing", "date": "2025-08-01"})],
        id="vllm45-thinking",
    ),
    pytest.param(  # VLLM45: test_extract_tool_calls_empty_arguments
        "<tool_call>get_current_time\n</tool_call>",
        "",
        [ParsedCall("get_current_time", {})],
        id="vllm45-no-arguments",
    ),
    pytest.param(  # VLLM45: test_extract_tool_calls_mixed_content
        """I will help you get the weather info.

<tool_call>get_weather
<arg_key>city</arg_key>
<arg_value>Beijing</arg_value>
<arg_key>date</arg_key>
<arg_value>2025-08-01</arg_value>
</tool_call>

meaningwhile, I will also check the weather in Shanghai.

<tool_call>get_weather
<arg_key>city</arg_key>
<arg_value>Shanghai</arg_value>
<arg_key>date</arg_key>
<arg_value>2025-08-01</arg_value>
</tool_call>""",
        "I will help you get the weather info.\nmeaningwhile, I will also check the weather in "
        "Shanghai.",
        [
            ParsedCall("get_weather", {"city": "Beijing", "date": "2025-08-01"}),
            ParsedCall("get_weather", {"city": "Shanghai", "date": "2025-08-01"}),
        ],
        id="vllm45-text-between",
    ),
    pytest.param(  # VLLM45: test_extract_tool_calls_incomplete_tool_call. vLLM reads no call;
        # the shared cut-off policy reads it: its last value is complete, </tool_call> missing.
        """<tool_call>get_weather
<arg_key>city</arg_key>
<arg_value>Beijing</arg_value>
<arg_key>date</arg_key>
<arg_value>2025-08-01</arg_value>""",
        "",
        [ParsedCall("get_weather", {"city": "Beijing", "date": "2025-08-01"})],
        id="vllm45-closing-tag-missing",
    ),
    pytest.param(  # VLLM47: test_zero_arg_inline and test_content_before (GLM-4.7)
        "Checking.<tool_call>get_current_date</tool_call>",
        "Checking.",
        [ParsedCall("get_current_date", {})],
        id="vllm47-no-arguments-inline",
    ),
    pytest.param(  # VLLM47: test_multiple (GLM-4.7: no newlines)
        "<tool_call>get_weather<arg_key>city</arg_key><arg_value>Beijing</arg_value></tool_call>"
        "<tool_call>get_weather<arg_key>city</arg_key><arg_value>Shanghai</arg_value></tool_call>",
        "",
        [
            ParsedCall("get_weather", {"city": "Beijing"}),
            ParsedCall("get_weather", {"city": "Shanghai"}),
        ],
        id="vllm47-parallel-compact",
    ),
    pytest.param(  # SGLANG: test_multiple_tool_calls (blocks back to back)
        "<tool_call>get_weather\n"
        "<arg_key>city</arg_key>\n<arg_value>Beijing</arg_value>\n"
        "<arg_key>date</arg_key>\n<arg_value>2024-06-27</arg_value>\n"
        "</tool_call>"
        "<tool_call>get_weather\n"
        "<arg_key>city</arg_key>\n<arg_value>Shanghai</arg_value>\n"
        "<arg_key>date</arg_key>\n<arg_value>2024-06-28</arg_value>\n"
        "</tool_call>",
        "",
        [
            ParsedCall("get_weather", {"city": "Beijing", "date": "2024-06-27"}),
            ParsedCall("get_weather", {"city": "Shanghai", "date": "2024-06-28"}),
        ],
        id="sglang-parallel",
    ),
]


@pytest.mark.parametrize(("text", "content", "calls"), REAL)
def test_real_outputs_parse_to_the_expected_calls(text, content, calls):
    for tools in (None, WEATHER_TOOLS):  # all values here are strings either way
        turn = GLM.parse(text, tools=tools)
        assert (turn.content, turn.calls, turn.errors) == (content, calls, [])


def test_real_glm46_array_argument_typed_by_the_schema():
    # SGLANG: test_array_argument_with_escaped_json, "the raw response from GLM-4.6": a JSON
    # array as the value, and a Windows path whose backslashes are JSON-escaped.
    text = """<tool_call>todo_write\n<arg_key>todos</arg_key>\n<arg_value>[{\"id\": \"1\", \"task\": \"Check for hard-coded issues in the backend code\", \"status\": \"in_progress\"}, {\"id\": \"2\", \"task\": \"Check for hard-coded issues in the frontend code\", \"status\": \"pending\"}, {\"id\": \"3\", \"task\": \"Check for code violating the Single Responsibility Principle\", \"status\": \"pending\"}, {\"id\": \"4\", \"task\": \"Generate a rectification proposal report\", \"status\": \"pending\"}]</arg_value>
</tool_call>"""
    turn = GLM.parse(text, tools=TODO_TOOLS)
    assert turn.errors == [] and turn.calls[0].name == "todo_write"
    todos = turn.calls[0].arguments["todos"]
    assert [t["id"] for t in todos] == ["1", "2", "3", "4"] and todos[0]["status"] == "in_progress"
    text = """<tool_call>todo_write\n<arg_key>todos</arg_key>\n<arg_value>[{\"id\": \"1\", \"task\": \"Check file at C:\\\\Users\\\\test.txt\", \"status\": \"pending\"}]</arg_value></tool_call>"""
    turn = GLM.parse(text, tools=TODO_TOOLS)
    assert turn.calls == [
        ParsedCall(
            "todo_write",
            {
                "todos": [
                    {"id": "1", "task": r"Check file at C:\Users\test.txt", "status": "pending"}
                ]
            },
        )
    ]


MALFORMED = [
    pytest.param(  # VLLM45: test_extract_tool_calls_malformed_xml
        """<tool_call>get_weather
<arg_key>city</arg_key>
<arg_value>Seattle</arg_value>
<arg_key>incomplete_arg
<arg_value>value</arg_value>
</tool_call>""",
        None,
        "tool call 1: <arg_key> 'incomplete_arg' has no </arg_key>",
        id="vllm45-malformed-key",
    ),
    pytest.param(  # SGLANG: test_invalid_tool_call (a tool not among the schemas)
        "<tool_call>invalid_func\n<arg_key>city</arg_key>\n<arg_value>Beijing</arg_value>\n"
        "</tool_call>",
        WEATHER_TOOLS,
        "tool call 1: unknown tool 'invalid_func'",
        id="sglang-unknown-tool",
    ),
    pytest.param(  # SGLANG: test_partial_tool_call, its first chunk alone (cut off there)
        "<tool_call>get_weather\n<arg_key>city</arg_key>\n",
        None,
        "tool call 1: the block was cut off before the value of 'city'",
        id="sglang-cut-off-after-key",
    ),
]


@pytest.mark.parametrize(("text", "tools", "error"), MALFORMED)
def test_real_malformed_outputs_are_errors_not_silent(text, tools, error):
    turn = GLM.parse(text, tools=tools)
    assert turn.calls == []
    assert [e.message[: len(error)] for e in turn.errors] == [error]


# --- Values and schemas -------------------------------------------------------------------------

TYPED_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "f",
            "parameters": {
                "type": "object",
                "properties": {
                    "s": {"type": "string"},
                    "n": {"type": "integer"},
                    "x": {"type": "number"},
                    "b": {"type": "boolean"},
                    "o": {"type": "object"},
                    "a": {"type": "array"},
                    "z": {"type": "null"},
                },
            },
        },
    }
]


def block(name: str, **arguments: str) -> str:
    pairs = "".join(
        f"<arg_key>{k}</arg_key>\n<arg_value>{v}</arg_value>\n" for k, v in arguments.items()
    )
    return f"<tool_call>{name}\n{pairs}</tool_call>"


def test_values_are_typed_by_the_schema():
    text = block("f", s="123", n="7", x="0.5", b="true", o='{"k": [1]}', a='["u"]', z="null")
    turn = GLM.parse(text, tools=TYPED_TOOLS)
    assert turn.errors == [] and turn.calls == [
        ParsedCall("f", {"s": "123", "n": 7, "x": 0.5, "b": True, "o": {"k": [1]}, "a": ["u"], "z": None})
    ]  # fmt: skip
    # A value the schema refuses stays text, for the tool's validation to report.
    assert GLM.parse(block("f", n="seven"), tools=TYPED_TOOLS).calls == [
        ParsedCall("f", {"n": "seven"})
    ]


def test_without_a_schema_a_value_that_reads_as_json_is_json():
    # GLM's template writes non-strings with tojson, so this reads them back.
    turn = GLM.parse(block("g", n="3", s="hello world", o='{"a": [1, {"b": null}]}', t="true"))
    assert turn.calls == [
        ParsedCall("g", {"n": 3, "s": "hello world", "o": {"a": [1, {"b": None}]}, "t": True})
    ]


def test_strings_are_kept_exactly_quotes_newlines_and_markup_included():
    value = 'line 1\n  "quoted" \\n not a newline\n<b>bold</b> </tool_call> or <arg_key>\n'
    turn = GLM.parse(block("f", s=value) + "\nDone.", tools=TYPED_TOOLS)
    assert turn.calls == [ParsedCall("f", {"s": value})] and turn.content == "Done."


def test_nested_json_arguments():
    nested = {
        "filters": {"tags": ["a", "b"], "range": {"lo": 1, "hi": 2.5}},
        "deep": [[{"x": None}]],
    }
    text = block("f", o=json.dumps(nested["filters"]), a=json.dumps(nested["deep"]))
    assert GLM.parse(text, tools=TYPED_TOOLS).calls == [
        ParsedCall("f", {"o": nested["filters"], "a": nested["deep"]})
    ]


# --- Cut-off and malformed blocks ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("<tool_call>get_wea", "the block was cut off after the function name"),
        ("<tool_call>get_weather\n", "the block was cut off after the function name"),
        ("<tool_call>get_weather\n<arg_key>ci", "the block was cut off inside an argument name"),
        (
            "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Par",
            "the block was cut off inside the value of 'city'",
        ),
        ("Sure. <tool_call>", "the block was cut off before the function name"),
    ],
)
def test_a_block_cut_off_inside_is_an_error_saying_so(text, error):
    turn = GLM.parse(text)
    assert turn.calls == [] and [e.message for e in turn.errors] == [f"tool call 1: {error}"]


def test_a_complete_first_call_is_kept_when_the_second_is_cut_off():
    text = block("f", a="1") + "\n<tool_call>g\n<arg_key>b</arg_key>\n<arg_value>tw"
    turn = GLM.parse(text)
    assert turn.calls == [ParsedCall("f", {"a": 1})]
    assert [e.message.split(":")[0] for e in turn.errors] == ["tool call 2"]


@pytest.mark.parametrize(
    ("inner", "error"),
    [
        ("get weather\n<arg_key>a</arg_key><arg_value>1</arg_value>", "invalid function name 'get weather'"),
        ("\n<arg_key>a</arg_key><arg_value>1</arg_value>", "no function name after <tool_call>"),
        ("f\n<arg_key>a</arg_key><arg_value>1</arg_value><arg_key>a</arg_key><arg_value>2</arg_value>", "argument 'a' is given twice"),
        ("f\n<arg_key> </arg_key><arg_value>1</arg_value>", "empty argument name"),
        ("f\n<arg_key>a</arg_key>\nstray<arg_value>1</arg_value>", "expected <arg_value> after <arg_key>a</arg_key>"),
        ("f\n<arg_key>a</arg_key><arg_value>1</arg_value>\nstray text", "expected <arg_key> or </tool_call>, found 'stray text'"),
        ("f\n<arg_key>a</arg_key><arg_value>1", "the value of 'a' has no </arg_value>"),
    ],
)  # fmt: skip
def test_malformed_blocks_are_errors_and_the_others_are_kept(inner, error):
    text = f"Text.<tool_call>{inner}</tool_call>\n" + block("ok", v="2")
    turn = GLM.parse(text)
    assert turn.calls == [ParsedCall("ok", {"v": 2})]
    assert len(turn.errors) == 1 and turn.errors[0].message.startswith(f"tool call 1: {error}")
    assert turn.content == "Text."


def test_more_than_max_calls_is_one_error_and_the_first_calls_are_kept():
    turn = GLM.parse("".join(f"<tool_call>f{i}</tool_call>" for i in range(MAX_CALLS + 3)))
    assert len(turn.calls) == MAX_CALLS
    assert len(turn.errors) == 1 and turn.errors[0].message.startswith(f"more than {MAX_CALLS}")


def test_parse_message_passes_the_schemas():
    message = {"role": "assistant", "content": block("f", s="42", n="42")}
    turn = parse_message(message, "glm45", tools=TYPED_TOOLS)
    assert turn.calls == [ParsedCall("f", {"s": "42", "n": 42})]


# --- The <tool_call> tag is shared with Hermes and Qwen3-Coder -----------------------------------

HERMES_BLOCKS = [
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
    '<tool_call>\n```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```\n</tool_call>',
    "<tool_call>\n{'name': 'get_weather', 'arguments': {'city': 'Paris'}}\n</tool_call>",
    '<tool_call>[{"name": "get_weather", "arguments": {"city": "Paris"}}]</tool_call>',
]
QWEN_XML_BLOCK = "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>"
GLM_BLOCK = REAL[0].values[0]


@pytest.mark.parametrize(
    "text",
    [*HERMES_BLOCKS, QWEN_XML_BLOCK, "Use <tool_call> tags, then JSON.", "Use <tool_call> tags"],
)
def test_other_formats_blocks_are_left_as_content(text):
    assert GLM.parse("Sure. " + text) == GLM.parse("Sure. " + text).__class__(
        "Sure. " + text, [], [], ""
    )


@pytest.mark.parametrize("name", ["hermes", "qwen3_xml"])
def test_hermes_and_qwen3_xml_leave_glm_blocks_alone(name):
    for text in (GLM_BLOCK, REAL[7].values[0], REAL[8].values[0], REAL[4].values[0]):
        turn = get_parser(name).parse(text)
        assert (turn.calls, turn.errors) == ([], []), (name, text)


def test_auto_with_glm45_before_hermes_reads_each_format_right():
    order = ["harmony", "deepseek_v3", "kimi_k2", "qwen3_xml", "glm45", "hermes", "mistral",
             "llama3_json", "json"]  # fmt: skip
    auto = AutoParser([get_parser(name) for name in order])
    assert auto.parse(GLM_BLOCK).calls == REAL[0].values[2]
    assert auto.parse(HERMES_BLOCKS[0]).calls == [ParsedCall("get_weather", {"city": "Paris"})]
    assert auto.parse(QWEN_XML_BLOCK).calls == [ParsedCall("get_weather", {"city": "Paris"})]


# --- Render ---------------------------------------------------------------------------------------

# The assistant part of GLM-4.5's chat template, verbatim (zai-org/GLM-4.5 chat_template.jinja,
# as quoted in ggml-org/llama.cpp pull request 15186); GLM-4.6's differs only in `tojson|string`.
GLM_TEMPLATE = """\
{%- if content.strip() -%}
{{ '\\n' + content.strip() }}
{%- endif -%}
{% if m.tool_calls %}
{% for tc in m.tool_calls %}
{%- if tc.function %}
    {%- set tc = tc.function %}
{%- endif %}
{{ '\\n<tool_call>' + tc.name }}
{% set _args = tc.arguments %}
{% for k, v in _args.items() %}
<arg_key>{{ k }}</arg_key>
<arg_value>{{ v | tojson if v is not string else v }}</arg_value>
{% endfor %}
</tool_call>{% endfor %}
{% endif %}"""


def hf_template(source: str) -> jinja2.Template:
    """A template compiled the way transformers compiles chat templates."""
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = lambda value: json.dumps(value, ensure_ascii=False)
    return env.from_string(source)


def test_render_writes_what_the_chat_template_writes():
    calls = [
        ParsedCall("get_weather", {"city": "Zürich", "days": 3, "opts": {"unit": "c"}}),
        ParsedCall("get_current_time", {}),
    ]
    m = {"tool_calls": [{"function": {"name": c.name, "arguments": c.arguments}} for c in calls]}
    expected = hf_template(GLM_TEMPLATE).render(content="Checking.", m=m)
    # The template opens the turn with "\n" (after <think></think>); render gives the text after.
    assert GLM.render(calls, "Checking.") == expected.lstrip("\n")
    assert GLM.parse(expected).calls == calls


_KEYS = st.from_regex(r"[a-z_][a-z0-9_]{0,7}", fullmatch=True)
_SCALARS = {
    # Not "</arg_value>" (it would end the value); not a reasoning marker (the base parser
    # sets reasoning apart before any format reads the text).
    "string": st.text(max_size=12).filter(
        lambda s: "</arg_value>" not in s and "think>" not in s and "THINK]" not in s
    ),
    "integer": st.integers(-(10**9), 10**9),
    "number": st.floats(allow_nan=False, allow_infinity=False),
    "boolean": st.booleans(),
    "null": st.none(),
    "array": st.lists(st.integers() | st.text(max_size=4), max_size=3),
    "object": st.dictionaries(st.text(max_size=4), st.integers() | st.none(), max_size=3),
}


@st.composite
def _call_with_schema(draw):
    name = draw(st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,11}", fullmatch=True))
    kinds = draw(st.dictionaries(_KEYS, st.sampled_from(sorted(_SCALARS)), max_size=4))
    arguments = {key: draw(_SCALARS[kind]) for key, kind in kinds.items()}
    properties = {key: {"type": kind} for key, kind in kinds.items()}
    tool = {
        "type": "function",
        "function": {"name": name, "parameters": {"properties": properties}},
    }
    return ParsedCall(name, arguments), tool


@settings(max_examples=200, deadline=None)
@given(
    drawn=st.lists(_call_with_schema(), max_size=4, unique_by=lambda d: d[0].name),
    content=st.text(alphabet=string.ascii_letters + " .,!?\n", max_size=30),
)
def test_parse_of_render_is_the_identity(drawn, content):
    calls = [call for call, _ in drawn]
    tools = [tool for _, tool in drawn]
    turn = GLM.parse(GLM.render(calls, content), tools=tools)
    assert turn.errors == [] and turn.calls == calls
    assert turn.content == content.strip()


_PIECES = ["<tool_call>", "</tool_call>", "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>",
           "f", "get weather", "a", "1", '{"a": ', "[", "}", "\\", '"', "\n", " ", "<function=f>",
           "<think>", "</think>", "```"]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=24).map("".join))
def test_fuzzed_markup_never_raises(text):
    for tools in (None, TYPED_TOOLS):
        turn = GLM.parse(text, tools=tools)
        assert not any("parser failed" in error.message for error in turn.errors)
        assert all(isinstance(call.arguments, dict) for call in turn.calls)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_fuzzed_text_never_raises(text):
    assert not any("parser failed" in e.message for e in GLM.parse(text).errors)


def test_a_block_written_json_escaped_is_read():
    """Found by the public test set (SGLang's GLM-4.6 raw responses): ``\\n`` between the tags
    and ``\\"`` in values, as if the block were the inside of a JSON string."""
    tools = [
        {
            "type": "function",
            "function": {
                "name": "todo",
                "parameters": {"properties": {"items": {"type": "array"}}},
            },
        }
    ]
    text = '<tool_call>todo\\n<arg_key>items</arg_key>\\n<arg_value>[{\\"id\\": \\"1\\"}]</arg_value>\n</tool_call>'
    assert GLM.parse(text, tools=tools).calls == [ParsedCall("todo", {"items": [{"id": "1"}]})]
