"""The Gemma parsers: ``gemma4`` (Gemma 4's ``<|tool_call>call:NAME{...}<tool_call|>``),
``functiongemma`` (``<start_function_call>call:NAME{...}<end_function_call>``) and ``gemma``
(Gemma 3 prompted to write ```` ```tool_code ```` fences, read with the pythonic reader).

Real samples cite their source next to them: Google's Gemma docs (ai.google.dev/gemma/docs/...)
and vLLM's tests (github.com/vllm-project/vllm, ``tests/tool_parsers/test_gemma4_tool_parser.py``,
``tests/tool_parsers/test_gemma4_regex_and_bare_calls.py``,
``tests/tool_parsers/test_functiongemma_tool_parser.py``).
"""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlenv.tools.parsers import MAX_CALLS, ParsedCall, ParsedTurn, get_parser

GEMMA4 = get_parser("gemma4")
FUNCTIONGEMMA = get_parser("functiongemma")
TOOL_CODE = get_parser("gemma")
Q = '<|"|>'  # Gemma 4's string delimiter token
E = "<escape>"  # FunctionGemma's


def tool(name: str, **properties: dict) -> dict:
    return {
        "type": "function",
        "function": {"name": name, "parameters": {"type": "object", "properties": properties}},
    }


# --- Gemma 4: real outputs -----------------------------------------------------------------------

REAL_GEMMA4 = [
    pytest.param(
        # ai.google.dev/gemma/docs/capabilities/text/function-calling-gemma4 ("Tool call from model")
        f"<|tool_call>call:get_current_temperature{{location:{Q}London{Q}}}<tool_call|>",
        [ParsedCall("get_current_temperature", {"location": "London"})],
        "",
        id="google-docs",
    ),
    pytest.param(
        # vllm tests/tool_parsers/test_gemma4_tool_parser.py, test_multiple_arguments
        f"<|tool_call>call:get_weather{{location:{Q}San Francisco{Q},unit:{Q}celsius{Q}}}<tool_call|>",
        [ParsedCall("get_weather", {"location": "San Francisco", "unit": "celsius"})],
        "",
        id="vllm-multiple-arguments",
    ),
    pytest.param(
        # vllm tests/tool_parsers/test_gemma4_tool_parser.py, test_text_before_tool_call
        "Let me check the weather for you. "
        f"<|tool_call>call:get_weather{{location:{Q}Paris{Q}}}<tool_call|>",
        [ParsedCall("get_weather", {"location": "Paris"})],
        "Let me check the weather for you.",
        id="vllm-text-before",
    ),
    pytest.param(
        # vllm tests/tool_parsers/test_gemma4_tool_parser.py, test_multiple_tool_calls
        f"<|tool_call>call:get_weather{{location:{Q}London{Q}}}<tool_call|>"
        f"<|tool_call>call:get_time{{location:{Q}London{Q}}}<tool_call|>",
        [
            ParsedCall("get_weather", {"location": "London"}),
            ParsedCall("get_time", {"location": "London"}),
        ],
        "",
        id="vllm-parallel",
    ),
    pytest.param(
        # vllm tests/tool_parsers/test_gemma4_tool_parser.py, test_nested_arguments
        f"<|tool_call>call:complex_function{{nested:{{inner:{Q}value{Q}}},"
        f"list:[{Q}a{Q},{Q}b{Q}]}}<tool_call|>",
        [ParsedCall("complex_function", {"nested": {"inner": "value"}, "list": ["a", "b"]})],
        "",
        id="vllm-nested",
    ),
    pytest.param(
        # vllm tests/tool_parsers/test_gemma4_tool_parser.py, test_tool_call_with_number_and_boolean
        "<|tool_call>call:set_status{is_active:true,count:42,score:3.14}<tool_call|>",
        [ParsedCall("set_status", {"is_active": True, "count": 42, "score": 3.14})],
        "",
        id="vllm-number-and-boolean",
    ),
    pytest.param(
        # vllm tests/tool_parsers/test_gemma4_tool_parser.py, test_hyphenated_function_name and
        # test_dotted_function_name
        f"<|tool_call>call:get-weather{{location:{Q}London{Q}}}<tool_call|>"
        f"<|tool_call>call:weather.get{{location:{Q}London{Q}}}<tool_call|>",
        [
            ParsedCall("get-weather", {"location": "London"}),
            ParsedCall("weather.get", {"location": "London"}),
        ],
        "",
        id="vllm-hyphen-and-dot-names",
    ),
    pytest.param(
        # vllm tests/tool_parsers/test_gemma4_tool_parser.py, test_no_arguments
        "<|tool_call>call:get_status{}<tool_call|>",
        [ParsedCall("get_status", {})],
        "",
        id="vllm-no-arguments",
    ),
    pytest.param(
        # vllm tests/tool_parsers/test_gemma4_tool_parser.py, TestParseGemma4Args.test_null_value and
        # test_string_delimited_dict_key
        f"<|tool_call>call:f{{param:null,record_map:{{{Q}3{Q}:{Q}new text{Q}}}}}<tool_call|>",
        [ParsedCall("f", {"param": None, "record_map": {"3": "new text"}})],
        "",
        id="vllm-null-and-quoted-key",
    ),
    pytest.param(
        # vllm tests/tool_parsers/test_gemma4_tool_parser.py,
        # test_streaming_html_argument_does_not_duplicate_tag_prefixes (chunks joined)
        f"<|tool_call>call:write_file{{path:{Q}index.html{Q},content:{Q}<!DOCTYPE html>\n"
        '<html lang="zh-CN">\n<head>\n    <meta charset="UTF-8">\n'
        f'    <meta name="viewport" content="width=device-width">\n{Q}}}<tool_call|>',
        [
            ParsedCall(
                "write_file",
                {
                    "path": "index.html",
                    "content": '<!DOCTYPE html>\n<html lang="zh-CN">\n<head>\n    <meta charset="UTF-8">\n'
                    '    <meta name="viewport" content="width=device-width">\n',
                },
            )
        ],
        "",
        id="vllm-html-content",
    ),
    pytest.param(
        # vllm tests/tool_parsers/test_gemma4_regex_and_bare_calls.py,
        # test_turn_end_closure_instead_of_tool_call_end
        f"<|tool_call>call:gdb{{args:{Q}-batch -ex run /tmp/poc{Q}}}<turn|>",
        [ParsedCall("gdb", {"args": "-batch -ex run /tmp/poc"})],
        "",
        id="vllm-turn-end-closure",
    ),
    pytest.param(
        # vllm tests/tool_parsers/test_gemma4_regex_and_bare_calls.py,
        # test_multiple_sequential_canonical_calls
        f"<|tool_call>call:read_file{{path:{Q}/work/Makefile{Q}}}<tool_call|>\n"
        f"<|tool_call>call:bash{{command:{Q}make -j8{Q}}}<tool_call|>",
        [
            ParsedCall("read_file", {"path": "/work/Makefile"}),
            ParsedCall("bash", {"command": "make -j8"}),
        ],
        "",
        id="vllm-sequential",
    ),
    pytest.param(
        # vllm tests/tool_parsers/test_gemma4_regex_and_bare_calls.py, test_colon_prefixed_tool_call
        f"<|tool_call>:call:bash{{command:{Q}pytest{Q}}}",
        [ParsedCall("bash", {"command": "pytest"})],
        "",
        id="vllm-colon-prefixed",
    ),
]


@pytest.mark.parametrize(("text", "calls", "content"), REAL_GEMMA4)
def test_real_gemma4_outputs(text, calls, content):
    assert GEMMA4.parse(text) == ParsedTurn(content, calls, [])


def test_gemma4_bare_call_after_the_thought_channel():
    # vllm tests/tool_parsers/test_gemma4_regex_and_bare_calls.py, test_bare_call_after_thought_channel
    text = (
        "<|channel>thought\nI need to read the entry source file to inspect the crash point.\n"
        f"<channel|>call:bash{{command:{Q}cat /work/src/entry.c{Q}}}"
    )
    assert GEMMA4.parse(text).calls == [ParsedCall("bash", {"command": "cat /work/src/entry.c"})]
    # a turn that starts with it (the thought channel set apart before parsing) reads the same
    assert GEMMA4.parse(f"  call:bash{{command:{Q}ls{Q}}}").calls == [
        ParsedCall("bash", {"command": "ls"})
    ]
    # but call:...{ in prose is text
    prose = f"You could call:bash{{command:{Q}ls{Q}}} later."
    assert GEMMA4.parse(prose) == ParsedTurn(prose, [], [])


def test_the_tokens_that_end_the_turn_are_not_content():
    text = "Checking.<|tool_call>call:f{a:1}<tool_call|><|tool_response>"
    assert GEMMA4.parse(text) == ParsedTurn("Checking.", [ParsedCall("f", {"a": 1})], [])
    text = f"{'<start_function_call>'}call:f{{a:1}}<end_function_call><start_function_response>"
    assert FUNCTIONGEMMA.parse(text) == ParsedTurn("", [ParsedCall("f", {"a": 1})], [])


def test_strings_carry_quotes_braces_commas_and_newlines_verbatim():
    value = 'say "hi", then {x: [1, 2]}\nand \\n stays two characters'
    turn = GEMMA4.parse(f"<|tool_call>call:echo{{text:{Q}{value}{Q},n:-1.5e3}}<tool_call|>")
    assert turn.calls == [ParsedCall("echo", {"text": value, "n": -1500.0})] and not turn.errors


# --- FunctionGemma: real outputs -----------------------------------------------------------------

REAL_FUNCTIONGEMMA = [
    pytest.param(
        # ai.google.dev/gemma/docs/functiongemma/formatting-and-best-practices, Turn 3
        f"<start_function_call>call:get_current_weather{{location:{E}Tokyo, Japan{E}}}<end_function_call>",
        [ParsedCall("get_current_weather", {"location": "Tokyo, Japan"})],
        "",
        id="google-docs-turn-3",
    ),
    pytest.param(
        # ai.google.dev/gemma/docs/functiongemma/formatting-and-best-practices, "Scenario B"
        f"<start_function_call>call:get_current_temperature{{location:{E}Paris{E},unit:{E}celsius{E}}}"
        "<end_function_call>",
        [ParsedCall("get_current_temperature", {"location": "Paris", "unit": "celsius"})],
        "",
        id="google-docs-scenario-b",
    ),
    pytest.param(
        # vllm tests/tool_parsers/test_functiongemma_tool_parser.py, test_text_before_tool_call
        "Let me check the weather for you. "
        f"<start_function_call>call:get_weather{{location:{E}Paris{E}}}<end_function_call>",
        [ParsedCall("get_weather", {"location": "Paris"})],
        "Let me check the weather for you.",
        id="vllm-text-before",
    ),
    pytest.param(
        # vllm tests/tool_parsers/test_functiongemma_tool_parser.py, test_multiple_tool_calls
        f"<start_function_call>call:get_weather{{location:{E}London{E}}}<end_function_call>"
        f"<start_function_call>call:get_time{{timezone:{E}UTC{E}}}<end_function_call>",
        [
            ParsedCall("get_weather", {"location": "London"}),
            ParsedCall("get_time", {"timezone": "UTC"}),
        ],
        "",
        id="vllm-parallel",
    ),
    pytest.param(
        # vllm tests/tool_parsers/test_functiongemma_tool_parser.py, test_multiple_arguments
        f"<start_function_call>call:get_weather{{location:{E}San Francisco{E},unit:{E}celsius{E}}}"
        "<end_function_call>",
        [ParsedCall("get_weather", {"location": "San Francisco", "unit": "celsius"})],
        "",
        id="vllm-multiple-arguments",
    ),
]


@pytest.mark.parametrize(("text", "calls", "content"), REAL_FUNCTIONGEMMA)
def test_real_functiongemma_outputs(text, calls, content):
    assert FUNCTIONGEMMA.parse(text) == ParsedTurn(content, calls, [])


def test_quoted_values_of_non_string_parameters_are_typed_by_the_schema():
    # vllm tests/tool_parsers/test_functiongemma_tool_parser.py,
    # test_streamed_arguments_form_valid_json_with_three_keys ("limit:<escape>10<escape>" is 10)
    text = (
        f"<start_function_call>call:search{{query:{E}python{E},limit:{E}10{E},"
        f"sort:{E}relevance{E}}}<end_function_call>"
    )
    tools = [
        tool("search", query={"type": "string"}, limit={"type": "integer"}, sort={"type": "string"})
    ]
    assert FUNCTIONGEMMA.parse(text, tools=tools).calls == [
        ParsedCall("search", {"query": "python", "limit": 10, "sort": "relevance"})
    ]
    assert FUNCTIONGEMMA.parse(text).calls[0].arguments["limit"] == "10"  # no schema: a string
    code = [*tools, tool("f", code={"type": "string"})]
    assert GEMMA4.parse(f"<|tool_call>call:f{{code:{Q}123{Q}}}", tools=code).calls == [
        ParsedCall("f", {"code": "123"})
    ]


# --- Malformed and cut-off calls (both token styles) ---------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        # vllm tests/tool_parsers/test_gemma4_tool_parser.py, test_incomplete_tool_call (vLLM leaves
        # it as content; here it is an error that says it was cut off)
        f"<|tool_call>call:get_weather{{location:{Q}London",
        "<|tool_call>call:get_wea",
        "<|tool_call>",
        f"<|tool_call>call:f{{a:{Q}x{Q},b:",
        "<|tool_call>call:f{a:4",
        "<|tool_call>call:f{a:{b:[1,",
    ],
)
def test_a_call_cut_off_by_the_token_limit_is_an_error_and_earlier_calls_are_kept(text):
    turn = GEMMA4.parse("Sure. <|tool_call>call:g{}<tool_call|>" + text)
    assert turn.calls == [ParsedCall("g", {})] and turn.content == "Sure."
    assert len(turn.errors) == 1 and turn.errors[0].message.startswith("tool call 2: ")
    assert "cut off" in turn.errors[0].message


def test_a_complete_call_whose_end_token_is_missing_is_read():
    assert GEMMA4.parse("<|tool_call>call:f{a:1}").calls == [ParsedCall("f", {"a": 1})]
    fg = FUNCTIONGEMMA.parse(f"<start_function_call>call:f{{a:{E}x{E}}}  ")
    assert fg.calls == [ParsedCall("f", {"a": "x"})]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<|tool_call>call:get weather{a:1}<tool_call|>", "expected call:NAME"),
        ("<|tool_call>call:9lives{a:1}<tool_call|>", "invalid function name"),
        ("<|tool_call>get_weather{}<tool_call|>", "expected call:NAME"),
        (f"<|tool_call>call:f{{a:{Q}x}}<tool_call|>", "never closed"),
        ("<|tool_call>call:f{a:1 b:2,c}<tool_call|>", "expected ':' after 'c'"),
        ("<|tool_call>call:f{a:1,a:2}<tool_call|>", "given twice"),
        ("<|tool_call>call:f{a:}<tool_call|>", "expected a value"),
        ("<|tool_call>call:f{a:1}junk<tool_call|>", "unexpected text after the arguments"),
        ("<|tool_call>call:f{a:[1 2}<tool_call|>", "expected ',' or ']'"),
        ("<|tool_call>call:f{a:1e999}<tool_call|>", "numbers must be finite"),
    ],
)
def test_malformed_calls_are_errors_never_silent(text, expected):
    turn = GEMMA4.parse(text + f"<|tool_call>call:ok{{x:{Q}y{Q}}}<tool_call|>")
    assert turn.calls == [ParsedCall("ok", {"x": "y"})]  # the next call is still read
    assert len(turn.errors) == 1 and turn.errors[0].message.startswith("tool call 1: ")
    assert expected in turn.errors[0].message


def test_nesting_deeper_than_the_bound_is_an_error():
    deep = "<|tool_call>call:f{a:" + "[" * 150 + "]" * 150 + "}<tool_call|>"
    turn = GEMMA4.parse(deep)
    assert not turn.calls and "nested deeper" in turn.errors[0].message


def test_unknown_tools_and_max_calls():
    turn = GEMMA4.parse("<|tool_call>call:get_wether{}<tool_call|>", tools=[tool("get_weather")])
    assert not turn.calls and "unknown tool 'get_wether'" in turn.errors[0].message
    many = "".join(f"<|tool_call>call:f{{i:{i}}}<tool_call|>" for i in range(70))
    turn = GEMMA4.parse(many)
    assert len(turn.calls) == MAX_CALLS and len(turn.errors) == 1
    assert f"more than {MAX_CALLS}" in turn.errors[0].message


def test_other_parsers_leave_gemma_calls_alone():
    # auto can try gemma4 and functiongemma anywhere: their tokens are nobody else's
    for name in ("hermes", "mistral", "llama3_json", "json", "qwen3_xml"):
        for text in (REAL_GEMMA4[0].values[0], REAL_FUNCTIONGEMMA[0].values[0]):
            turn = get_parser(name).parse(text)
            assert not turn.calls and not turn.errors, name
    assert not GEMMA4.parse(REAL_FUNCTIONGEMMA[0].values[0]).calls
    assert not FUNCTIONGEMMA.parse(REAL_GEMMA4[0].values[0]).calls


# --- Round trips and fuzzing ---------------------------------------------------------------------

# Special tokens (the quote, the call and turn tokens) never sit inside a string; reasoning markers
# open reasoning wherever they are.
_SPECIAL = ('<|"|>', "<escape>", "<|tool_call>", "<tool_call|>", "<turn|>", "_function_call>")
_TEXT = st.text(
    alphabet=string.ascii_letters + string.digits + " .,:;!?-_'\"{}[]<>|/=\n\\", max_size=30
).filter(lambda s: not any(marker in s for marker in (*_SPECIAL, "think>", "THINK]")))
_KEYS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True) | _TEXT
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=10,
)
_CALLS = st.lists(
    st.builds(
        ParsedCall,
        st.sampled_from(["f", "get_weather", "ns.tool-1"]),
        st.dictionaries(
            st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True), _JSON, max_size=4
        ),
    ),
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(
    parser=st.sampled_from([GEMMA4, FUNCTIONGEMMA]),
    calls=_CALLS,
    content=_TEXT.filter(lambda s: "<" not in s and "call:" not in s),
)
def test_parse_of_render_is_the_identity(parser, calls, content):
    assert parser.parse(parser.render(calls, content)) == ParsedTurn(content.strip(), calls, [])


def test_render_refuses_a_string_holding_the_quote_token():
    with pytest.raises(ValueError, match="cannot be written"):
        GEMMA4.render([ParsedCall("f", {"a": f"x{Q}y"})])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["<|tool_call>", "<tool_call|>", "<turn|>", "call:", "f", "{", "}", "[", "]", ",", ":",
             Q, "a", "1", "true", "null", " ", "\n", "<channel|>", "<start_function_call>",
             "<end_function_call>", E, "```tool_code\n", "```", "f(a=1)", "print(", ")", "'"]
        ),
        max_size=30,
    ).map("".join)
)  # fmt: skip
def test_fuzzed_markup_never_raises(text):
    for parser in (GEMMA4, FUNCTIONGEMMA, TOOL_CODE):
        turn = parser.parse(text)
        assert isinstance(turn.content, str)
        assert all(isinstance(call.arguments, dict) for call in turn.calls)
        assert all(error.message.startswith(("tool call ", "more than")) for error in turn.errors)


# --- Gemma 3, prompted: ```tool_code ---------------------------------------------------------------

# The layout of Google's Gemma agent guides (ai.google.dev/gemma/docs/meme-generator: calls
# "wrapped with ```tool_code```", results returned in ```tool_output```), with the guide's tool
# generate_meme(image, top_text, middle_text, bottom_text); the values are ours.
MEME = (
    "```tool_code\n"
    'generate_meme(image="cat.png", top_text="When the code works", bottom_text="on the first try")\n'
    "```"
)


def test_tool_code_fences_are_read_with_the_pythonic_reader():
    assert TOOL_CODE.parse(MEME) == ParsedTurn(
        "",
        [
            ParsedCall(
                "generate_meme",
                {
                    "image": "cat.png",
                    "top_text": "When the code works",
                    "bottom_text": "on the first try",
                },
            )
        ],
        [],
    )


def test_several_calls_text_around_lists_and_print():
    text = (
        "Let me look both up.\n```tool_code\nget_weather(city='Paris')\n"
        'print(get_time(zone="CET"))\n[f(a=1), g(b=[1, {"c": None}])]\n```\nOne moment.'
    )
    turn = TOOL_CODE.parse(text)
    assert turn.calls == [
        ParsedCall("get_weather", {"city": "Paris"}),
        ParsedCall("get_time", {"zone": "CET"}),
        ParsedCall("f", {"a": 1}),
        ParsedCall("g", {"b": [1, {"c": None}]}),
    ]
    assert turn.content == "Let me look both up.\nOne moment." and not turn.errors


def test_tool_code_errors_cut_offs_and_what_is_not_this_format():
    cut = TOOL_CODE.parse('```tool_code\nget_weather(city="Par')
    assert not cut.calls and "cut off" in cut.errors[0].message
    unclosed = TOOL_CODE.parse('```tool_code\nget_weather(city="Paris")\n')  # fence never closed
    assert unclosed.calls == [ParsedCall("get_weather", {"city": "Paris"})]
    positional = TOOL_CODE.parse("```tool_code\nget_weather('Paris')\n```")
    assert "positional arguments" in positional.errors[0].message
    statement = TOOL_CODE.parse("```tool_code\nx = get_weather(city='Paris')\n```")
    assert "got a statement" in statement.errors[0].message
    broken = TOOL_CODE.parse("Sure.\n```tool_code\nget_weather(city=)\n```")
    assert "invalid Python in the ```tool_code block at line 3" in broken.errors[0].message
    json_fence = '```tool_code\n{"name": "f", "arguments": {}}\n```'
    assert TOOL_CODE.parse(json_fence) == ParsedTurn(json_fence, [], [])  # JSON: the json parser's
    python = "```python\nprint(1)\n```"
    assert TOOL_CODE.parse(python) == ParsedTurn(python, [], [])


def test_tool_code_max_calls():
    many = "```tool_code\n" + "\n".join(f"f(i={i})" for i in range(70)) + "\n```"
    turn = TOOL_CODE.parse(many)
    assert len(turn.calls) == MAX_CALLS and f"more than {MAX_CALLS}" in turn.errors[0].message


_PY_CALLS = st.lists(
    st.builds(
        ParsedCall,
        st.sampled_from(["f", "get_weather", "ns.tool"]),
        st.dictionaries(
            st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True).filter(
                lambda k: k not in {"if", "in", "is", "or", "as", "def", "for", "and", "not", "del"}
            ),
            _JSON,
            max_size=4,
        ),
    ),
    max_size=4,
)


@settings(max_examples=150, deadline=None)
@given(calls=_PY_CALLS, content=_TEXT.filter(lambda s: "`" not in s))
def test_tool_code_parse_of_render_is_the_identity(calls, content):
    assert TOOL_CODE.parse(TOOL_CODE.render(calls, content)) == ParsedTurn(
        content.strip(), calls, []
    )


@pytest.mark.parametrize("parser", [GEMMA4, FUNCTIONGEMMA], ids=lambda p: p.name)
def test_a_list_of_strings_typed_by_an_array_schema(parser):
    """Found by BFCL's answers rendered in every format: a list of quoted strings under an
    ``array`` schema once crashed the typing (it typed the whole list as a quoted string)."""
    tools = [
        {
            "type": "function",
            "function": {
                "name": "play",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "hand": {"type": "array", "items": {"type": "string"}},
                        "seats": {"type": "integer"},
                    },
                },
            },
        }
    ]
    call = ParsedCall("play", {"hand": ["8♥", "10♥"], "seats": 2})
    assert parser.parse(parser.render([call]), tools=tools) == ParsedTurn("", [call], [])
