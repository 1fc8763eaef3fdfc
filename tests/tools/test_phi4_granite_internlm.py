"""The ``phi4_mini``, ``granite`` and ``internlm`` parsers, on real outputs from public sources
(each sample names its source), round trips, malformed and cut-off calls, and fuzzing.

Layouts: Phi-4-mini ``functools[{...}, ...]`` (vLLM ``examples/tool_chat_template_phi4_mini.jinja``),
Granite 3.x ``<|tool_call|>[{...}]`` / ``<tool_call>[{...}]`` (vLLM ``granite`` parser), Granite 4
Hermes blocks (vLLM ``granite4`` parser), InternLM 2/2.5 ``<|action_start|><|plugin|>{...}<|action_end|>``
(vLLM ``examples/tool_chat_template_internlm2_tool.jinja``).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlenv.tools.parsers import (
    MAX_CALLS,
    AutoParser,
    GraniteParser,
    InternLMParser,
    ParsedCall,
    ParsedTurn,
    Phi4MiniParser,
    get_parser,
    list_parsers,
)

PHI4, GRANITE, INTERNLM = get_parser("phi4_mini"), get_parser("granite"), get_parser("internlm")

VLLM_PHI4 = "vllm-project/vllm tests/tool_parsers/test_phi4mini_tool_parser.py"
VLLM_GRANITE = "vllm-project/vllm tests/tool_parsers/test_granite_tool_parser.py"
VLLM_GRANITE4 = "vllm-project/vllm tests/tool_parsers/test_granite4_tool_parser.py"
VLLM_INTERNLM = "vllm-project/vllm tests/tool_parsers/test_internlm2_tool_parser.py"
LLAMA_CPP = "ggml-org/llama.cpp tests/test-chat.cpp"

TOKYO = ParsedCall("get_weather", {"city": "Tokyo"})
TIME = ParsedCall("get_time", {"timezone": "Asia/Tokyo"})
VARIOUS = ParsedCall(
    "test_function",
    {
        "string_field": "hello", "int_field": 42, "float_field": 3.14, "bool_field": True,
        "null_field": None, "array_field": ["a", "b", "c"], "object_field": {"nested": "value"},
        "empty_array": [], "empty_object": {},
    },
)  # fmt: skip
ESCAPED = ParsedCall(
    "test_function",
    {
        "quoted": 'He said "hello"', "path": "C:\\Users\\file.txt",
        "newline": "line1\nline2", "unicode": "emoji: 🎉",
    },
)  # fmt: skip
VARIOUS_JSON = """{
  "name": "test_function",
  "%s": {
    "string_field": "hello",
    "int_field": 42,
    "float_field": 3.14,
    "bool_field": true,
    "null_field": null,
    "array_field": ["a", "b", "c"],
    "object_field": {"nested": "value"},
    "empty_array": [],
    "empty_object": {}
  }
}"""
ESCAPED_JSON = """{
  "name": "test_function",
  "%s": {
    "quoted": "He said \\"hello\\"",
    "path": "C:\\\\Users\\\\file.txt",
    "newline": "line1\\nline2",
    "unicode": "emoji: 🎉"
  }
}"""

# (source, model text, expected calls, expected content)
PHI4_SAMPLES = [
    (VLLM_PHI4, 'functools[{"name": "get_weather", "arguments": {"city": "Tokyo"}}]', [TOKYO], ""),
    (
        VLLM_PHI4,
        'functools[\n  {"name": "get_weather", "arguments": {"city": "Tokyo"}},\n'
        '  {"name": "get_time", "arguments": {"timezone": "Asia/Tokyo"}}\n]',
        [TOKYO, TIME],
        "",
    ),
    (VLLM_PHI4, f"functools[{VARIOUS_JSON % 'arguments'}]", [VARIOUS], ""),
    (VLLM_PHI4, f"functools[{ESCAPED_JSON % 'arguments'}]", [ESCAPED], ""),
    (VLLM_PHI4, 'functools[{"name": "refresh", "arguments": {}}]', [ParsedCall("refresh", {})], ""),
    (
        VLLM_PHI4,
        "Let me check the weather for you.\n"
        'functools[{"name": "get_weather", "arguments": {"city": "Tokyo"}}]\n'
        "Would you like to know more?",
        [TOKYO],
        "Let me check the weather for you.\nWould you like to know more?",
    ),
    (
        "ai-dynamo/dynamo lib/parsers/src/tool_calling/parsers.rs (test_phi4_single_function_call)",
        'functools[{"name": "get_country_capital", "arguments": {"country": "Poland"}}]',
        [ParsedCall("get_country_capital", {"country": "Poland"})],
        "",
    ),
    (
        "ai-dynamo/dynamo lib/parsers/src/tool_calling/test_cases/fixtures/phi4.rs (one object)",
        'functools{"name":"get_weather","arguments":{"city":"Tokyo"}}',
        [TOKYO],
        "",
    ),
    (
        f"{LLAMA_CPP} (Firefunction v2, the same functools layout, leading space)",
        ' functools[{"name": "special_function", "arguments": {"arg1": 1}}]',
        [ParsedCall("special_function", {"arg1": 1})],
        "",
    ),
    (
        "ollama/ollama server tool-call tests ('firefunction with functools', same layout)",
        ' functools[{"name": "get_current_weather", "arguments": {"format":"fahrenheit",'
        '"location":"San Francisco, CA"}},{"name": "get_current_weather", "arguments": '
        '{"format":"celsius","location":"Toronto, Canada"}}]',
        [
            ParsedCall(
                "get_current_weather", {"format": "fahrenheit", "location": "San Francisco, CA"}
            ),
            ParsedCall("get_current_weather", {"format": "celsius", "location": "Toronto, Canada"}),
        ],
        "",
    ),
    (
        "Phi-4-mini's own tokens as Ollama's phi4-mini template writes past calls (layout from "
        "unslothai/unsloth's Ollama template mapper, https://ollama.com/library/phi4-mini)",
        '<|tool_call|>[{"name":"get_weather","arguments":{"city":"Tokyo"}}]<|/tool_call|>',
        [TOKYO],
        "",
    ),
]

GRANITE_SAMPLES = [
    (
        VLLM_GRANITE,
        '<|tool_call|> [{"name": "get_weather", "arguments": {"city": "Tokyo"}}]',
        [TOKYO],
        "",
    ),
    (
        VLLM_GRANITE,
        '<|tool_call|> [\n  {"name": "get_weather", "arguments": {"city": "Tokyo"}},\n'
        '  {"name": "get_time", "arguments": {"timezone": "Asia/Tokyo"}}\n]',
        [TOKYO, TIME],
        "",
    ),
    (
        f"{VLLM_GRANITE} (Granite 3.1 string tag)",
        f"<tool_call> [{VARIOUS_JSON % 'arguments'}]",
        [VARIOUS],
        "",
    ),
    (VLLM_GRANITE, f"<tool_call> [{ESCAPED_JSON % 'arguments'}]", [ESCAPED], ""),
    (
        f"{VLLM_GRANITE} (vLLM xfails it: text around the call)",
        "Let me check the weather for you.\n"
        '<|tool_call|> [{"name": "get_weather", "arguments": {"city": "Tokyo"}}]\n'
        "I'll get that information.",
        [TOKYO],
        "Let me check the weather for you.\nI'll get that information.",
    ),
    (
        f"{VLLM_GRANITE} (arguments before name, as Granite writes them)",
        '<|tool_call|> [{"arguments": {"city": "Tokyo"}, "name": "get_weather"}, '
        '{"arguments": {"timezone": "Asia/Tokyo"}, "name": "get_time"}]',
        [TOKYO, TIME],
        "",
    ),
    (
        LLAMA_CPP,
        '<|tool_call|>[{"name": "special_function", "arguments": {"arg1": 1}}]',
        [ParsedCall("special_function", {"arg1": 1})],
        "",
    ),
    (
        "openshift/lightspeed-service PR #2554 (Granite prompt's sample call)",
        '<tool_call>[{"arguments": {"oc_adm_top_args": ["pods", "-A"]}, "name": "oc_adm_top"}]',
        [ParsedCall("oc_adm_top", {"oc_adm_top_args": ["pods", "-A"]})],
        "",
    ),
    (
        "devYRPauli/willitcall docs/case-studies/2026-07-20-granite-emits-tool-calls-no-server-"
        "parses.md (granite3.1-dense:8b)",
        '<tool_call>[{"arguments":{"date": "2026-08-11"},"name":"get_calendar"},\n'
        ' {"arguments": {"title": "Review", "date": "2026-08-11",\n'
        '  "time": "<available_time>"},"name":"create_event"}]',
        [
            ParsedCall("get_calendar", {"date": "2026-08-11"}),
            ParsedCall(
                "create_event",
                {"title": "Review", "date": "2026-08-11", "time": "<available_time>"},
            ),
        ],
        "",
    ),
    (
        "chrishayuk/chuk-llm tests/providers/test_watsonx_client.py (closing tag, text before)",
        "I'll help you. "
        '<tool_call>[{"arguments": {"location": "Paris"}, "name": "get_weather"}]</tool_call>',
        [ParsedCall("get_weather", {"location": "Paris"})],
        "I'll help you.",
    ),
    (
        "chrishayuk/chuk-llm tests/providers/test_watsonx_client.py (nested arguments)",
        '<tool_call>[{\n        "arguments": {\n            "query": "SELECT * FROM users WHERE '
        'age > 21",\n            "options": {"limit": 100, "format": "json"}\n        },\n'
        '        "name": "execute_sql"\n    }]</tool_call>',
        [
            ParsedCall(
                "execute_sql",
                {
                    "query": "SELECT * FROM users WHERE age > 21",
                    "options": {"limit": 100, "format": "json"},
                },
            )
        ],
        "",
    ),
]

# Granite 4 writes Hermes blocks, arguments sometimes double-encoded as a JSON string.
GRANITE4_SAMPLE = (
    VLLM_GRANITE4,
    'Here goes the bbox call: \n<tool_call> {"name": "find_bbox", "arguments": "{\\"coordinates\\":'
    ' [[23.54, 43.1], [-12.2, 54.3], [4, 5]], \\"coordinate_type\\": \\"latlong\\"}"} </tool_call>'
    " See? I'm a helpful assistant.",
    [
        ParsedCall(
            "find_bbox",
            {"coordinates": [[23.54, 43.1], [-12.2, 54.3], [4, 5]], "coordinate_type": "latlong"},
        )
    ],
    "Here goes the bbox call:\nSee? I'm a helpful assistant.",
)

INTERNLM_SAMPLES = [
    (
        VLLM_INTERNLM,
        '<|action_start|><|plugin|>{"name": "get_weather", "parameters": {"city": "Tokyo"}}'
        "<|action_end|>",
        [TOKYO],
        "",
    ),
    (
        VLLM_INTERNLM,
        f"<|action_start|><|plugin|>{VARIOUS_JSON % 'parameters'}<|action_end|>",
        [VARIOUS],
        "",
    ),
    (
        VLLM_INTERNLM,
        f"<|action_start|><|plugin|>{ESCAPED_JSON % 'parameters'}<|action_end|>",
        [ESCAPED],
        "",
    ),
    (
        VLLM_INTERNLM,
        '<|action_start|><|plugin|>{"name": "refresh", "parameters": {}}<|action_end|>',
        [ParsedCall("refresh", {})],
        "",
    ),
    (
        VLLM_INTERNLM,
        "Let me check the weather for you. "
        '<|action_start|><|plugin|>{"name": "get_weather", "parameters": {"city": "Tokyo"}}'
        "<|action_end|>",
        [TOKYO],
        "Let me check the weather for you.",
    ),
    (
        "InternLM/lmdeploy tests/test_lmdeploy/test_model.py (InternLM2 chat template)",
        '(3+5)*2 = 8*2 =<|action_start|><|plugin|>\n{"name": "mul", "parameters": {"a": 8, "b": 2}}'
        "<|action_end|>",
        [ParsedCall("mul", {"a": 8, "b": 2})],
        "(3+5)*2 = 8*2 =",
    ),
    (
        "LazyAGI/LazyLLM docs/en/Best Practice/functionCall.md (raw InternLM2 output)",
        '\nI need to use the "get_current_weather" function to get the current weather in Tokyo '
        "and Paris. I will call the function twice, once for Tokyo and once for Paris."
        '<|action_start|><|plugin|>\n{"name": "get_current_weather", "parameters": '
        '{"location": "Tokyo"}}<|action_end|><|im_end|>',
        [ParsedCall("get_current_weather", {"location": "Tokyo"})],
        'I need to use the "get_current_weather" function to get the current weather in Tokyo '
        "and Paris. I will call the function twice, once for Tokyo and once for Paris.",
    ),
]

SAMPLES = [
    *(("phi4_mini", *sample) for sample in PHI4_SAMPLES),
    *(("granite", *sample) for sample in GRANITE_SAMPLES),
    ("granite", *GRANITE4_SAMPLE),
    *(("internlm", *sample) for sample in INTERNLM_SAMPLES),
]

# (parser, source, model text, what the error message must contain)
MALFORMED = [
    ("phi4_mini", VLLM_PHI4, 'functools[{"name": "func", "arguments": {', "cut off"),
    (
        "phi4_mini",
        VLLM_PHI4,
        'functools[{"name": "func", "arguments": "not a dict"}]',
        "JSON object",
    ),
    ("phi4_mini", VLLM_PHI4, "functools[ This is just text ]", "invalid JSON"),
    ("granite", VLLM_GRANITE, '<|tool_call|> [{"name": "func", "arguments": {', "cut off"),
    ("granite", f"{LLAMA_CPP} (partial)", '<|tool_call|>[{"name": "special_function"', "cut off"),
    (
        "granite",
        "chrishayuk/chuk-llm tests/providers/test_watsonx_client.py (unquoted key)",
        '<tool_call>[{"arguments": {location: "Paris"}, "name": "get_weather"}]</tool_call>',
        "invalid JSON",
    ),
    (
        "granite",
        "devYRPauli/willitcall granite case study (granite3.1-dense:8b left out the name)",
        '<tool_call>[{"arguments":{"city": "München"}}]',
        "missing 'name'",
    ),
    (
        "internlm",
        VLLM_INTERNLM,
        '<|action_start|><|plugin|>{"name": "func", "parameters": {',
        "cut off",
    ),
    (
        "internlm",
        VLLM_INTERNLM,
        '<|action_start|><|plugin|>{"name": "func", "parameters": "not a dict"}<|action_end|>',
        "JSON object",
    ),
    ("internlm", VLLM_INTERNLM, "<|action_start|><|plugin|>not json<|action_end|>", "JSON object"),
    ("internlm", VLLM_INTERNLM, "<|action_start|><|plugin|>", "cut off"),
    ("internlm", VLLM_INTERNLM, '<|action_start|>{"name": "func"}', "<|plugin|>"),
]

# The order recommended for AUTO_ORDER (auto.py is not edited here): each new format before the
# parsers that misread it (llama3_json reads the JSON after any marker and keeps the marker as
# content; hermes reports Granite 3.1's `<tool_call>[...]` as broken; mistral's unmarked form
# reads `functools{...}` as a call to a function named "functools").
RECOMMENDED_AUTO = (
    "harmony", "deepseek_v3", "qwen3_xml", "internlm", "granite", "hermes", "phi4_mini",
    "mistral", "llama3_json", "json",
)  # fmt: skip


def _ids(samples):
    return [f"{sample[0]}-{index}" for index, sample in enumerate(samples)]


@pytest.mark.parametrize(
    ("name", "source", "text", "expected", "content"), SAMPLES, ids=_ids(SAMPLES)
)
def test_real_outputs_parse_to_the_expected_calls(name, source, text, expected, content):
    turn = get_parser(name).parse(text)
    assert turn.errors == [], source
    assert turn.calls == expected, source
    assert turn.content == content, source


@pytest.mark.parametrize(("name", "source", "text", "problem"), MALFORMED, ids=_ids(MALFORMED))
def test_real_malformed_outputs_are_errors_never_partial_calls(name, source, text, problem):
    turn = get_parser(name).parse(text)
    assert turn.calls == [], source
    assert len(turn.errors) == 1 and turn.errors[0].message.startswith("tool call 1: "), source
    assert problem in turn.errors[0].message, (source, turn.errors[0].message)


@pytest.mark.parametrize(
    ("name", "source", "text", "expected", "content"), SAMPLES, ids=_ids(SAMPLES)
)
def test_the_recommended_auto_order_reads_every_sample_as_its_own_parser(
    name, source, text, expected, content
):
    auto = AutoParser([get_parser(parser) for parser in RECOMMENDED_AUTO])
    assert auto.parse(text) == get_parser(name).parse(text), source


def test_granite_4_is_read_by_hermes_too():
    source, text, expected, content = GRANITE4_SAMPLE
    assert get_parser("hermes").parse(text) == ParsedTurn(content, expected, [])
    assert GRANITE.parse(text) == get_parser("hermes").parse(text)


def test_registered_and_exported():
    assert {"phi4_mini", "granite", "internlm"} <= set(list_parsers())
    assert isinstance(PHI4, Phi4MiniParser) and isinstance(GRANITE, GraniteParser)
    assert isinstance(INTERNLM, InternLMParser)


# --- Cut-off policy -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parser", "text"),
    [
        (PHI4, 'functools[{"name": "f", "arguments": {"x": 1}}'),  # no "]"
        (PHI4, '<|tool_call|>[{"name": "f", "arguments": {"x": 1}}]'),  # no <|/tool_call|>
        (GRANITE, '<|tool_call|>[{"name": "f", "arguments": {"x": 1}}'),
        (GRANITE, '<tool_call>[{"name": "f", "arguments": {"x": 1}}]'),  # no </tool_call>
        (INTERNLM, '<|action_start|><|plugin|>{"name": "f", "parameters": {"x": 1}}'),
    ],
)
def test_complete_arguments_with_the_closing_marker_missing_are_read(parser, text):
    turn = parser.parse(text)
    assert turn.calls == [ParsedCall("f", {"x": 1})] and turn.errors == [] and turn.content == ""


@pytest.mark.parametrize(
    ("parser", "text"),
    [
        (PHI4, "functools["),
        (PHI4, 'functools[{"name": "f", "arguments": {"x": "abc'),
        (GRANITE, "<|tool_call|>"),
        (GRANITE, '<tool_call>[{"name": "f", "arguments": {"x": [1, 2'),
        (INTERNLM, "<|action_start|>"),
        (INTERNLM, '<|action_start|><|plugin|>\n{"name": "f", "parameters": {"x": "a\\'),
    ],
)
def test_arguments_cut_off_are_an_error_saying_so(parser, text):
    turn = parser.parse(text)
    assert turn.calls == [] and len(turn.errors) == 1 and "cut off" in turn.errors[0].message


def test_a_cut_off_last_call_keeps_the_calls_before_it():
    for parser, text in [
        (PHI4, 'functools[{"name": "a", "arguments": {}}, {"name": "b", "arguments": {"x": '),
        (GRANITE, '<|tool_call|>[{"name": "a", "arguments": {}}, {"name": "b", "argu'),
        (
            INTERNLM,
            INTERNLM.render([ParsedCall("a", {})]) + '<|action_start|><|plugin|>{"name": "b',
        ),
    ]:
        turn = parser.parse(text)
        assert turn.calls == [ParsedCall("a", {})], parser
        assert [e.message[:29] for e in turn.errors] == ["tool call 2: the call was cut"], parser


# --- What is not a call -------------------------------------------------------------------------


def test_functools_in_prose_or_code_is_text():
    for text in (
        "Use functools.partial here: import functools",
        "x = my_functools[0]",
        "functools (the module) has reduce",
    ):
        assert PHI4.parse(text) == ParsedTurn(text, [], [])
    turn = PHI4.parse('See functools.reduce.\nfunctools[{"name": "f", "arguments": {}}]')
    assert turn.content == "See functools.reduce." and turn.calls == [ParsedCall("f", {})]


def test_granite_leaves_plain_text_and_other_formats_alone():
    assert GRANITE.parse("The answer is 4.") == ParsedTurn("The answer is 4.", [], [])
    qwen3 = "<tool_call>\n<function=f>\n<parameter=x>\n1\n</parameter>\n</function>\n</tool_call>"
    assert GRANITE.parse(qwen3).calls == [] and GRANITE.parse(qwen3).errors == []


def test_special_tokens_followed_by_no_json_are_errors():
    assert "expected a JSON list or object after <|tool_call|>" in (
        GRANITE.parse("<|tool_call|>get_weather(city='Paris')").errors[0].message
    )
    interpreter = INTERNLM.parse("<|action_start|><|interpreter|>\nprint(1 + 1)<|action_end|>")
    assert interpreter.calls == [] and "interpreter" in interpreter.errors[0].message


def test_text_after_the_json_inside_a_closed_action_is_an_error():
    turn = INTERNLM.parse('<|action_start|><|plugin|>{"name": "f"} oops<|action_end|>')
    assert turn.calls == [] and "unexpected text after the JSON object" in turn.errors[0].message


def test_calls_inside_reasoning_are_not_calls():
    for parser, call in [
        (PHI4, 'functools[{"name": "f", "arguments": {}}]'),
        (GRANITE, '<|tool_call|>[{"name": "f", "arguments": {}}]'),
        (INTERNLM, '<|action_start|><|plugin|>{"name": "f", "parameters": {}}<|action_end|>'),
    ]:
        turn = parser.parse(f"<think>maybe {call}</think>The answer is 4.")
        assert turn.calls == [] and turn.errors == [] and turn.content == "The answer is 4."


# --- Names, arguments, bounds --------------------------------------------------------------------


@pytest.mark.parametrize("parser", [PHI4, GRANITE, INTERNLM], ids=lambda p: p.name)
def test_invalid_names_are_errors_and_the_calls_before_are_kept(parser):
    good, bad = ParsedCall("get_weather", {"city": "Paris"}), ParsedCall("get weather", {})
    turn = parser.parse(parser.render([good, bad]))
    assert turn.calls == [good]
    assert [error.message[:38] for error in turn.errors] == [
        "tool call 2: invalid function name 'ge"
    ]


@pytest.mark.parametrize(
    "parser",
    [PHI4, GRANITE, INTERNLM, get_parser("json"), get_parser("mistral")],
    ids=lambda p: p.name,
)
def test_a_call_after_an_invalid_one_is_still_read(parser):
    good, bad = ParsedCall("get_weather", {"city": "Paris"}), ParsedCall("get weather", {})
    turn = parser.parse(parser.render([good, bad, good]))
    assert turn.calls == [good, good] and len(turn.errors) == 1


@pytest.mark.parametrize("parser", [PHI4, GRANITE, INTERNLM], ids=lambda p: p.name)
def test_unknown_tools_are_errors_when_the_schemas_are_given(parser):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    turn = parser.parse(parser.render([ParsedCall("get_wether", {})]), tools=tools)
    assert turn.calls == [] and "unknown tool 'get_wether'" in turn.errors[0].message


@pytest.mark.parametrize("parser", [PHI4, GRANITE, INTERNLM], ids=lambda p: p.name)
def test_escaped_quotes_newlines_and_nested_arguments_survive(parser):
    call = ParsedCall(
        "run",
        {
            "code": 'print("a\\"b")\nx = {"k": [1, {"deep": [None, True]}]}',
            "tags": ["functools[", "<tool_call>", "}]"],
            "nested": {"a": {"b": {"c": [1.5, -2, "é"]}}},
        },
    )
    turn = parser.parse(parser.render([call], "Running it."))
    assert turn == ParsedTurn("Running it.", [call], [])


@pytest.mark.parametrize("parser", [PHI4, GRANITE, INTERNLM], ids=lambda p: p.name)
def test_more_than_max_calls_is_one_error_and_the_first_max_calls_are_kept(parser):
    calls = [ParsedCall("f", {"i": index}) for index in range(MAX_CALLS + 3)]
    turn = parser.parse(parser.render(calls))
    assert turn.calls == calls[:MAX_CALLS]
    assert len(turn.errors) == 1 and turn.errors[0].message.startswith(f"more than {MAX_CALLS}")


def test_double_encoded_arguments_and_parameters_key_are_accepted():
    turn = PHI4.parse('functools[{"name": "f", "parameters": "{\\"x\\": 1}"}]')
    assert turn.calls == [ParsedCall("f", {"x": 1})]
    turn = INTERNLM.parse('<|action_start|><|plugin|>{"name": "f", "arguments": {"x": 1}}')
    assert turn.calls == [ParsedCall("f", {"x": 1})]


def test_render_writes_each_family_layout():
    calls = [ParsedCall("f", {"x": 1}), ParsedCall("g", {})]
    assert PHI4.render(calls, "Hi.") == (
        'Hi.\nfunctools[{"name": "f", "arguments": {"x": 1}}, {"name": "g", "arguments": {}}]'
    )
    assert GRANITE.render(calls) == (
        '<|tool_call|>[{"name": "f", "arguments": {"x": 1}}, {"name": "g", "arguments": {}}]'
    )
    assert INTERNLM.render(calls[:1], "Hi.") == (
        'Hi.<|action_start|><|plugin|>\n{"name": "f", "parameters": {"x": 1}}<|action_end|>'
    )
    for parser in (PHI4, GRANITE, INTERNLM):
        assert parser.render([], " Just text. ") == "Just text."


# --- Properties ----------------------------------------------------------------------------------

_JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(alphabet='ab "\\\n\t{}[],:é🎉', max_size=12),
)
_ARGUMENTS = st.dictionaries(
    st.text(alphabet="abc_", min_size=1, max_size=4),
    st.recursive(
        _JSON_SCALARS,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.text(alphabet="xyz", max_size=3), inner, max_size=3)
        ),
        max_leaves=6,
    ),
    max_size=3,
)
_CALLS = st.lists(
    st.builds(ParsedCall, st.sampled_from(["f", "get_weather", "ns.tool-1", "_x"]), _ARGUMENTS),
    max_size=4,
)


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(["phi4_mini", "granite", "internlm"]),
    calls=_CALLS,
    content=st.text(alphabet="abc .,!?\n", max_size=20),
)
def test_parse_of_render_is_the_identity(name, calls, content):
    parser = get_parser(name)
    turn = parser.parse(parser.render(calls, content))
    assert turn.calls == calls and turn.errors == []
    assert turn.content == content.strip()


_FRAGMENTS = st.sampled_from(
    [
        "functools", "functools[", "<|tool_call|>", "<|/tool_call|>", "<tool_call>",
        "</tool_call>", "<|action_start|>", "<|plugin|>", "<|interpreter|>", "<|action_end|>",
        "<|im_end|>", "<think>", "</think>", "[", "]", "{", "}", '"', ",", ":", "\\", "\n",
        '{"name": "f", "arguments": {"x": 1}}', '"name"', '"parameters"', "null", "1e999",
    ]
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(["phi4_mini", "granite", "internlm"]),
    pieces=st.lists(st.one_of(_FRAGMENTS, st.text(max_size=6)), max_size=20),
)
def test_fuzzed_markup_never_raises_and_never_reports_a_parser_bug(name, pieces):
    turn = get_parser(name).parse("".join(pieces))
    assert isinstance(turn, ParsedTurn)
    assert not any("parser failed" in error.message for error in turn.errors)
    for error in turn.errors:  # numbered as the shared policy says, or the overflow message
        assert error.message.startswith(("tool call ", "after tool call ", "more than "))


@settings(max_examples=100, deadline=None)
@given(
    name=st.sampled_from(["phi4_mini", "granite", "internlm"]),
    calls=_CALLS.filter(bool),
    cut=st.integers(min_value=1, max_value=400),
)
def test_a_render_cut_anywhere_never_yields_a_call_that_was_not_written(name, calls, cut):
    parser = get_parser(name)
    text = parser.render(calls)
    turn = parser.parse(text[: max(0, len(text) - cut)])
    assert turn.calls == calls[: len(turn.calls)]  # a prefix of the real calls, never a partial one
