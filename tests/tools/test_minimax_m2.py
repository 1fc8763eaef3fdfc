"""The ``minimax_m2`` parser (MiniMax-M2, M2.1, M2.5: ``<minimax:tool_call><invoke name=...>``)
and ``minimax_m1`` (MiniMax-M1: ``<tool_calls>`` with a JSON object per line).

Real samples cite their source next to them: MiniMax's own guide
(github.com/MiniMax-AI/MiniMax-M2, ``docs/tool_calling_guide.md``) and vLLM's tests
(github.com/vllm-project/vllm, ``tests/tool_use/test_minimax_m2_tool_parser.py``,
``tests/tool_parsers/test_minimax_m2_tool_parser.py``, ``tests/tool_use/test_minimax_tool_parser.py``).
"""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlenv.tools.parsers import MAX_CALLS, ParsedCall, ParsedTurn, get_parser

M2 = get_parser("minimax_m2")
M1 = get_parser("minimax_m1")


def tool(name: str, **properties: dict) -> dict:
    return {
        "type": "function",
        "function": {"name": name, "parameters": {"type": "object", "properties": properties}},
    }


TOOLS = [
    tool(
        "get_weather", location={"type": "string"}, unit={"type": "string"}, city={"type": "string"}
    ),
    tool("test_func", arg1={"type": "string"}, arg2={"type": "string"}),
    tool("help", topic={"type": "string"}),
    tool(
        "search_web",
        query_list={"type": "array", "items": {"type": "string"}},
        query_tag={"type": "array", "items": {"type": "string"}},
    ),
    tool(
        "update_profile",
        nickname={"anyOf": [{"type": "string"}, {"type": "null"}]},
        config={"anyOf": [{"type": "object"}, {"type": "null"}]},
    ),
    tool("fn_a", x={"type": "integer"}),
    tool("fn_b", y={"type": "integer"}),
]

# --- Real outputs --------------------------------------------------------------------------------

REAL_M2 = [
    pytest.param(
        # MiniMax-AI/MiniMax-M2 docs/tool_calling_guide.md, "Usage Example" (model output)
        'Let me help you query the weather.\n<minimax:tool_call>\n<invoke name="get_weather">\n'
        '<parameter name="location">San Francisco</parameter>\n'
        '<parameter name="unit">celsius</parameter>\n</invoke>\n</minimax:tool_call>',
        [ParsedCall("get_weather", {"location": "San Francisco", "unit": "celsius"})],
        "Let me help you query the weather.",
        id="guide-usage-example",
    ),
    pytest.param(
        # MiniMax-AI/MiniMax-M2 docs/tool_calling_guide.md, "Model Output Format": two invokes in
        # one block, JSON arrays holding escaped quotes
        '<minimax:tool_call>\n<invoke name="search_web">\n'
        '<parameter name="query_tag">["technology", "events"]</parameter>\n'
        '<parameter name="query_list">["\\"OpenAI\\" \\"latest\\" \\"release\\""]</parameter>\n'
        '</invoke>\n<invoke name="search_web">\n'
        '<parameter name="query_tag">["technology", "events"]</parameter>\n'
        '<parameter name="query_list">["\\"Gemini\\" \\"latest\\" \\"release\\""]</parameter>\n'
        "</invoke>\n</minimax:tool_call>",
        [
            ParsedCall(
                "search_web",
                {
                    "query_tag": ["technology", "events"],
                    "query_list": ['"OpenAI" "latest" "release"'],
                },
            ),
            ParsedCall(
                "search_web",
                {
                    "query_tag": ["technology", "events"],
                    "query_list": ['"Gemini" "latest" "release"'],
                },
            ),
        ],
        "",
        id="guide-parallel-invokes",
    ),
    pytest.param(
        # vllm tests/tool_use/test_minimax_m2_tool_parser.py, test_non_streaming_with_extra_attributes
        # (vLLM issue #32827: the model echoes attributes after the name)
        '<minimax:tool_call><invoke name="test_func" extra="ignored">'
        '<parameter name="arg1" type="string">value1</parameter>'
        '<parameter name="arg2" description="(e.g. example)">value2</parameter>'
        "</invoke></minimax:tool_call>",
        [ParsedCall("test_func", {"arg1": "value1", "arg2": "value2"})],
        "",
        id="vllm-extra-attributes",
    ),
    pytest.param(
        # vllm tests/tool_parsers/test_minimax_m2_tool_parser.py, test_content_before_tool_call
        'Let me check. <minimax:tool_call><invoke name="get_weather">'
        '<parameter name="city">Seattle</parameter></invoke></minimax:tool_call>',
        [ParsedCall("get_weather", {"city": "Seattle"})],
        "Let me check.",
        id="vllm-content-before",
    ),
    pytest.param(
        # vllm tests/tool_parsers/test_minimax_m2_tool_parser.py, test_two_invokes_in_single_delta
        '<minimax:tool_call><invoke name="fn_a"><parameter name="x">1</parameter></invoke>'
        '<invoke name="fn_b"><parameter name="y">2</parameter></invoke></minimax:tool_call>',
        [ParsedCall("fn_a", {"x": 1}), ParsedCall("fn_b", {"y": 2})],
        "",
        id="vllm-two-invokes",
    ),
    pytest.param(
        # vllm tests/tool_use/test_minimax_m2_tool_parser.py, test_streaming_with_parentheses_in_value
        '<minimax:tool_call><invoke name="help"><parameter name="topic">'
        "commands (e.g. ls -la, cat file.txt)</parameter></invoke></minimax:tool_call>",
        [ParsedCall("help", {"topic": "commands (e.g. ls -la, cat file.txt)"})],
        "",
        id="vllm-parentheses-in-value",
    ),
    pytest.param(
        # vllm tests/tool_parsers/test_minimax_m2_tool_parser.py, TestAnyOfNullableParam
        '<minimax:tool_call><invoke name="update_profile">'
        '<parameter name="nickname">null</parameter></invoke></minimax:tool_call>',
        [ParsedCall("update_profile", {"nickname": None})],
        "",
        id="vllm-anyof-null",
    ),
    pytest.param(
        # vllm tests/tool_parsers/test_minimax_m2_tool_parser.py, TestAnyOfNullableParam (object)
        '<minimax:tool_call><invoke name="update_profile">'
        '<parameter name="config">{"theme": "dark", "fontSize": 14}</parameter>'
        '<parameter name="nickname">Alice</parameter></invoke></minimax:tool_call>',
        [
            ParsedCall(
                "update_profile", {"config": {"theme": "dark", "fontSize": 14}, "nickname": "Alice"}
            )
        ],
        "",
        id="vllm-anyof-object",
    ),
]


@pytest.mark.parametrize(("text", "calls", "content"), REAL_M2)
def test_real_minimax_m2_outputs(text, calls, content):
    assert M2.parse(text, tools=TOOLS) == ParsedTurn(content, calls, [])


def test_real_outputs_are_read_the_same_without_the_optional_markers():
    # the block's closing tag missing (generation stopped, the stop token stripped) reads the same
    text = REAL_M2[0].values[0].removesuffix("</minimax:tool_call>")
    assert M2.parse(text, tools=TOOLS).calls == REAL_M2[0].values[1]


# --- Typing, layout variants ---------------------------------------------------------------------


def test_values_are_typed_by_the_schema_and_a_string_stays_a_string():
    tools = [tool("f", n={"type": "integer"}, s={"type": "string"}, o={"type": "object"})]
    text = (
        '<minimax:tool_call>\n<invoke name="f">\n<parameter name="n">3</parameter>\n'
        '<parameter name="s">3</parameter>\n<parameter name="o">{"a": [1, {"b": null}]}</parameter>\n'
        "</invoke>\n</minimax:tool_call>"
    )
    assert M2.parse(text, tools=tools).calls == [
        ParsedCall("f", {"n": 3, "s": "3", "o": {"a": [1, {"b": None}]}})
    ]
    assert M2.parse(text).calls[0].arguments["s"] == 3  # without a schema: JSON when it reads so


def test_quotes_newlines_and_markup_inside_values_are_kept():
    code = 'print("a \\"quoted\\" word")\nif x < 3 and y > 2:\n    pass'
    text = (
        '<minimax:tool_call>\n<invoke name="write">\n<parameter name="path">a.py</parameter>\n'
        f'<parameter name="content">{code}</parameter>\n</invoke>\n</minimax:tool_call>'
    )
    tools = [tool("write", path={"type": "string"}, content={"type": "string"})]
    assert M2.parse(text, tools=tools).calls == [
        ParsedCall("write", {"path": "a.py", "content": code})
    ]


def test_single_quoted_and_bare_names_and_several_blocks():
    text = (
        "First.<minimax:tool_call><invoke name='f'><parameter name=a>1</parameter></invoke>"
        "</minimax:tool_call> Then.<minimax:tool_call><invoke name=g></invoke></minimax:tool_call>"
        " Done."
    )
    turn = M2.parse(text)
    assert turn.calls == [ParsedCall("f", {"a": 1}), ParsedCall("g", {})]
    assert turn.content == "First.\nThen.\nDone."


def test_reasoning_is_set_apart_and_a_call_inside_it_is_not_a_call():
    text = (
        '<think>Maybe <minimax:tool_call><invoke name="f"></invoke></minimax:tool_call></think>\n'
        'Sure.\n<minimax:tool_call><invoke name="g"></invoke></minimax:tool_call>'
    )
    turn = M2.parse(text)
    assert turn.calls == [ParsedCall("g", {})] and turn.content == "Sure."
    assert "Maybe" in turn.reasoning


# --- Malformed and cut-off calls -----------------------------------------------------------------


def test_a_call_cut_off_by_the_token_limit_is_an_error_and_earlier_calls_are_kept():
    text = (
        'Ok.<minimax:tool_call>\n<invoke name="f">\n<parameter name="a">1</parameter>\n</invoke>\n'
        '<invoke name="g">\n<parameter name="b">Par'
    )
    turn = M2.parse(text)
    assert turn.calls == [ParsedCall("f", {"a": 1})] and turn.content == "Ok."
    assert len(turn.errors) == 1 and turn.errors[0].message.startswith("tool call 2: ")
    assert "cut off" in turn.errors[0].message
    for cut in ("<minimax:tool_call>", "<minimax:tool_call>\n<invoke na"):
        assert "cut off" in M2.parse(cut).errors[0].message and not M2.parse(cut).calls


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '<minimax:tool_call><invoke name="get weather"></invoke></minimax:tool_call>',
            "invalid function name",
        ),
        (
            '<minimax:tool_call><invoke name="9f"></invoke></minimax:tool_call>',
            "invalid function name",
        ),
        ("<minimax:tool_call>\n</minimax:tool_call>", "empty <minimax:tool_call> block"),
        (
            '<minimax:tool_call>hello<invoke name="f"></invoke></minimax:tool_call>',
            "unexpected text",
        ),
        (
            "<minimax:tool_call><invoke></invoke></minimax:tool_call>",
            'expected <invoke name="NAME">',
        ),
        (
            '<minimax:tool_call><invoke name="f"><parameter name="a">1</parameter>'
            '<parameter name="a">2</parameter></invoke></minimax:tool_call>',
            "given twice",
        ),
        (
            '<minimax:tool_call><invoke name="f">stray<parameter name="a">1</parameter></invoke>'
            "</minimax:tool_call>",
            "unexpected text inside <invoke name='f'>",
        ),
    ],
)
def test_malformed_calls_are_errors_never_silent(text, expected):
    turn = M2.parse(text)
    assert not turn.calls and len(turn.errors) == 1
    assert turn.errors[0].message.startswith("tool call 1: ") and expected in turn.errors[0].message


def test_a_malformed_invoke_does_not_lose_the_next_one():
    text = (
        '<minimax:tool_call><invoke name="bad name"></invoke>'
        '<invoke name="g"><parameter name="b">2</parameter></invoke></minimax:tool_call>'
    )
    turn = M2.parse(text)
    assert turn.calls == [ParsedCall("g", {"b": 2})]
    assert turn.errors[0].message.startswith("tool call 1: invalid function name")


def test_unknown_tools_are_errors_when_the_schemas_are_given():
    text = '<minimax:tool_call><invoke name="get_wether"></invoke></minimax:tool_call>'
    turn = M2.parse(text, tools=TOOLS)
    assert not turn.calls and "unknown tool 'get_wether'" in turn.errors[0].message
    assert "did you mean 'get_weather'" in turn.errors[0].message


def test_more_than_max_calls_is_one_error():
    invokes = "".join(
        f'<invoke name="f"><parameter name="i">{i}</parameter></invoke>' for i in range(70)
    )
    turn = M2.parse(f"<minimax:tool_call>{invokes}</minimax:tool_call>")
    assert len(turn.calls) == MAX_CALLS and turn.calls[-1].arguments == {"i": MAX_CALLS - 1}
    assert len(turn.errors) == 1 and f"more than {MAX_CALLS}" in turn.errors[0].message


def test_other_parsers_leave_minimax_blocks_alone():
    # nothing in the MiniMax markup is Hermes's <tool_call> or Qwen3's XML, so auto can try
    # minimax_m2 anywhere before json
    for name in ("hermes", "qwen3_xml", "glm45"):
        for text in (
            REAL_M2[0].values[0],
            '<tool_calls>\n{"name": "f", "arguments": {}}\n</tool_calls>',
        ):
            turn = get_parser(name).parse(text)
            assert not turn.calls and not turn.errors, name


# --- Round trips and fuzzing ---------------------------------------------------------------------

_FORBIDDEN = ("<parameter", "</parameter>", "</invoke>", "minimax:tool_call", "think>", "THINK]")
_TEXT = st.text(
    alphabet=string.ascii_letters + string.digits + " .,:;!?-_'\"{}[]<>/=\n\\", max_size=30
).filter(lambda s: not any(marker in s for marker in _FORBIDDEN))
ROUND_TRIP_TOOLS = [
    tool(
        name,
        s={"type": "string"},
        n={"type": "integer"},
        x={"type": "number"},
        b={"type": "boolean"},
        o={"type": "object"},
        a={"type": "array"},
        z={"type": "null"},
    )
    for name in ("f", "get_weather", "ns.tool-1")
]
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**9), 10**9) | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)
_ARGUMENTS = st.fixed_dictionaries(
    {},
    optional={
        "s": _TEXT.map(str.strip),  # the space around a value is not kept (see the parser)
        "n": st.integers(-(10**12), 10**12),
        "x": st.floats(allow_nan=False, allow_infinity=False),
        "b": st.booleans(),
        "o": st.dictionaries(_TEXT, _JSON, max_size=3),
        "a": st.lists(_JSON, max_size=3),
        "z": st.none(),
    },
)
_CALLS = st.lists(
    st.builds(ParsedCall, st.sampled_from(["f", "get_weather", "ns.tool-1"]), _ARGUMENTS),
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(calls=_CALLS, content=_TEXT.filter(lambda s: "<" not in s))
def test_parse_of_render_is_the_identity(calls, content):
    turn = M2.parse(M2.render(calls, content), tools=ROUND_TRIP_TOOLS)
    assert turn == ParsedTurn(content.strip(), calls, [])


@settings(max_examples=100, deadline=None)
@given(calls=_CALLS, content=_TEXT.filter(lambda s: "<" not in s and "tool_calls" not in s))
def test_m1_parse_of_render_is_the_identity(calls, content):
    assert M1.parse(M1.render(calls, content)) == ParsedTurn(content.strip(), calls, [])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["<minimax:tool_call>", "</minimax:tool_call>", '<invoke name="f">', "<invoke name=",
             "</invoke>", '<parameter name="a">', "<parameter name=", "</parameter>", "\n", "1",
             '{"x":', "}", "text", "'", '"', ">", "<tool_calls>", "</tool_calls>",
             '{"name": "f", "arguments": {}}', "<think>", "</think>"]
        ),
        max_size=24,
    ).map("".join)
)  # fmt: skip
def test_fuzzed_markup_never_raises(text):
    for parser in (M2, M1):
        turn = parser.parse(text, tools=ROUND_TRIP_TOOLS)
        assert isinstance(turn.content, str)
        assert all(isinstance(call.arguments, dict) for call in turn.calls)
        assert all(error.message.startswith(("tool call ", "more than")) for error in turn.errors)


# --- MiniMax-M1 ----------------------------------------------------------------------------------

# vllm tests/tool_use/test_minimax_tool_parser.py, test_extract_tool_calls (the five cases)
REAL_M1 = [
    pytest.param(
        '<tool_calls>\n{"name": "get_current_weather", "arguments": {"city": "Dallas", "state": "TX", '
        '"unit": "fahrenheit"}}\n</tool_calls>',
        [
            ParsedCall(
                "get_current_weather", {"city": "Dallas", "state": "TX", "unit": "fahrenheit"}
            )
        ],
        "",
        id="single_tool_call",
    ),
    pytest.param(
        '<tool_calls>\n{"name": "get_current_weather", "arguments": {"city": "Dallas", "state": "TX", '
        '"unit": "fahrenheit"}}\n{"name": "get_current_weather", "arguments": {"city": "Orlando", '
        '"state": "FL", "unit": "fahrenheit"}}\n</tool_calls>',
        [
            ParsedCall(
                "get_current_weather", {"city": "Dallas", "state": "TX", "unit": "fahrenheit"}
            ),
            ParsedCall(
                "get_current_weather", {"city": "Orlando", "state": "FL", "unit": "fahrenheit"}
            ),
        ],
        "",
        id="multiple_tool_calls",
    ),
    pytest.param(
        'I\'ll help you check the weather. <tool_calls>\n{"name": "get_current_weather", '
        '"arguments": {"city": "Seattle", "state": "WA", "unit": "celsius"}}\n</tool_calls>',
        [ParsedCall("get_current_weather", {"city": "Seattle", "state": "WA", "unit": "celsius"})],
        "I'll help you check the weather.",
        id="tool_call_with_content_before",
    ),
    pytest.param(
        '<tool_calls>\n{"name": "get_current_weather", "arguments": {"city": "New York", "state": "NY", '
        '"unit": "celsius"}}\n</tool_calls>',
        [ParsedCall("get_current_weather", {"city": "New York", "state": "NY", "unit": "celsius"})],
        "",
        id="tool_call_with_single_line_json",
    ),
    pytest.param(
        '<tool_calls>\n{"name": "get_current_weather", "arguments": {"city": "Boston", "state": "MA"}}',
        [ParsedCall("get_current_weather", {"city": "Boston", "state": "MA"})],
        "",
        id="tool_call_incomplete_tag",
    ),
]


@pytest.mark.parametrize(("text", "calls", "content"), REAL_M1)
def test_real_minimax_m1_outputs(text, calls, content):
    assert M1.parse(text) == ParsedTurn(content, calls, [])


def test_m1_a_call_inside_reasoning_is_not_a_call():
    # vllm tests/tool_use/test_minimax_tool_parser.py, test_extract_tool_calls_with_thinking_tags
    text = (
        '<think>I should use a tool. <tool_calls>\n{"name": "ignored_tool", "arguments": '
        '{"should": "ignore"}}\n</tool_calls></think>\n\nLet me help you with the weather. <tool_calls>\n'
        '{"name": "get_current_weather", "arguments": {"city": "Miami", "state": "FL", "unit": '
        '"fahrenheit"}}\n</tool_calls>'
    )
    turn = M1.parse(text)
    assert [call.name for call in turn.calls] == ["get_current_weather"] and not turn.errors
    assert turn.content == "Let me help you with the weather."


def test_m1_a_broken_line_is_an_error_and_the_next_lines_are_read():
    # vllm tests/tool_use/test_minimax_tool_parser.py, test_extract_tool_calls_invalid_json (vLLM
    # drops the broken line silently; here it is an error)
    text = (
        '<tool_calls>\n{"name": "valid_tool", "arguments": {"city": "Seattle"}}\n{invalid json here}\n'
        '{"name": "another_valid_tool", "arguments": {"param": "value"}}\n</tool_calls>'
    )
    turn = M1.parse(text)
    assert [call.name for call in turn.calls] == ["valid_tool", "another_valid_tool"]
    assert len(turn.errors) == 1 and turn.errors[0].message.startswith("tool call 2: invalid JSON")
    missing = M1.parse('<tool_calls>\n{"arguments": {"city": "Portland"}}\n</tool_calls>')
    assert "missing 'name'" in missing.errors[0].message


def test_m1_cut_off_and_malformed_blocks():
    cut = M1.parse('<tool_calls>\n{"name": "f", "arguments": {"x": "Par')
    assert not cut.calls and "cut off" in cut.errors[0].message
    assert (
        "expected a JSON call object"
        in M1.parse("<tool_calls>\nf(x=1)\n</tool_calls>").errors[0].message
    )
    assert "empty" in M1.parse("<tool_calls>\n</tool_calls>").errors[0].message
    bad = M1.parse('<tool_calls>\n{"name": "get weather", "arguments": {}}\n</tool_calls>')
    assert "invalid function name" in bad.errors[0].message


def test_a_closed_block_whose_invoke_end_was_left_out_is_read():
    """ollama's MiniMax parser tests: ``</invoke>`` missing, the parameter and the block
    closed; the call is complete. Cut off at the end of the text, it is an error."""
    text = '<minimax:tool_call>\n<invoke name="f">\n<parameter name="s">Tokyo</parameter>\n'
    assert M2.parse(text + "</minimax:tool_call>").calls == [ParsedCall("f", {"s": "Tokyo"})]
    cut = M2.parse(text)
    assert cut.calls == [] and "cut off" in cut.errors[0].message


def test_space_around_a_value_is_not_the_values():
    """MiniMax's reference parser and vLLM's strip it (the template writes values flush)."""
    text = '<minimax:tool_call><invoke name="f"><parameter name="s">  San Francisco \n</parameter></invoke></minimax:tool_call>'
    assert M2.parse(text).calls == [ParsedCall("f", {"s": "San Francisco"})]
