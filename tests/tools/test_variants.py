"""Real-world variants of the formats the parsers already read, taken from public sources.

Each sample cites where it comes from (repository and path, or issue). Samples are model outputs
as inference engines hand them to their parsers: with special tokens dropped by the decoder,
several calls written in the ways models write them, text around the calls, calls cut off by the
token limit. Near misses (prose that resembles a call) must stay content.
"""

from __future__ import annotations

import pytest

from rlenv.tools.parsers import ParsedCall, ParsedTurn, get_parser

VLLM_MISTRAL = "vllm-project/vllm tests/tool_parsers/test_mistral_tool_parser.py"
VLLM_LLAMA = "vllm-project/vllm tests/tool_parsers/test_llama3_json_tool_parser.py"
VLLM_LLAMA4 = "vllm-project/vllm tests/tool_parsers/test_llama4_pythonic_tool_parser.py"
VLLM_PYTHONIC = "vllm-project/vllm tests/tool_parsers/test_pythonic_tool_parser.py"
VLLM_HERMES = "vllm-project/vllm tests/tool_parsers/test_hermes_tool_parser.py"
SGL_PARSER = "sgl-project/sglang test/srt/test_function_call_parser.py"
SGL_LLAMA_RS = "sgl-project/sglang sgl-router/tests/tool_parser_llama.rs"

WEATHER_SF = {"city": "San Francisco", "state": "CA", "unit": "celsius"}


def calls_of(parser: str, text: str, **kwargs) -> list[ParsedCall]:
    turn = get_parser(parser).parse(text, **kwargs)
    assert turn.errors == [], turn
    return turn.calls


def tools(*names: str) -> list[dict]:
    return [{"type": "function", "function": {"name": n, "parameters": {}}} for n in names]


# --- Mistral: special tokens dropped by the decoder ---------------------------------------------

MISTRAL_CASES = [
    # v11+ tokenizer through mistral_common: [ARGS] is skipped, [TOOL_CALLS] kept (VLLM_MISTRAL)
    (
        '[TOOL_CALLS]add_this_and_that{"a": 3.5, "b": 4}',
        [("add_this_and_that", {"a": 3.5, "b": 4})],
    ),
    (
        '[TOOL_CALLS]get_current_weather{"city": "San Francisco", "state": "CA", "unit": "celsius"}',
        [("get_current_weather", WEATHER_SF)],
    ),
    (
        '[TOOL_CALLS]add{"a": 3.5, "b": 4}[TOOL_CALLS]multiply{"a": 3, "b": 6}',
        [("add", {"a": 3.5, "b": 4}), ("multiply", {"a": 3, "b": 6})],
    ),
    (
        'bla[TOOL_CALLS]add_this_and_that{"a": 3.5, "b": 4}',
        [("add_this_and_that", {"a": 3.5, "b": 4})],
    ),
    (
        'hi{hi[TOOL_CALLS]bash{"command": "print(\\"hello world!\\")\\nre.compile(r\'{}\')"}',
        [("bash", {"command": "print(\"hello world!\")\nre.compile(r'{}')"})],
    ),
    # pre-v11 list form, as the same file tests it (space after the token, trailing text)
    (
        '[TOOL_CALLS] [{"arguments":{"name": "John Doe"}, "name": "get_age"}]',
        [("get_age", {"name": "John Doe"})],
    ),
    (
        '[TOOL_CALLS] [{"name": "get_current_weather", "arguments":{"city": "Dallas", "state": "TX",'
        ' "unit": "fahrenheit"}}]\nextra trailing data',
        [("get_current_weather", {"city": "Dallas", "state": "TX", "unit": "fahrenheit"})],
    ),
    # [TOOL_CALLS] skipped too: mistralai/mistral-inference#162 (decoded output of Mistral-7B v0.3)
    (
        '[{"name": "get_current_weather", "arguments": {"location": "San Francisco, CA", '
        '"format": "celsius"}}]',
        [("get_current_weather", {"location": "San Francisco, CA", "format": "celsius"})],
    ),
    # ml-explore/mlx-lm#1374: Ministral-8B-Instruct-2410's list, and Devstral's name[ARGS]{...}
    (
        '[{"name": "calculator", "arguments": {"expression": "2+3"}}]',
        [("calculator", {"expression": "2+3"})],
    ),
    ('calculator[ARGS]{"expression": "2+3"}', [("calculator", {"expression": "2+3"})]),
    # both tokens skipped, parallel calls back to back (VLLM_MISTRAL's v11 calls, decoded bare)
    (
        'add{"a": 3.5, "b": 4}multiply{"a": 3, "b": 6}',
        [("add", {"a": 3.5, "b": 4}), ("multiply", {"a": 3, "b": 6})],
    ),
    # SGL_PARSER TestMistralDetector: brackets inside a string argument
    (
        '[TOOL_CALLS] [{"name":"make_next_step_decision", "arguments":{"decision":"TOOL", '
        '"content":"[City Name] - [Weather Conditions]"}}]',
        [
            (
                "make_next_step_decision",
                {"decision": "TOOL", "content": "[City Name] - [Weather Conditions]"},
            )
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), MISTRAL_CASES)
def test_mistral_reads_what_engines_decode(text, expected):
    assert [(c.name, c.arguments) for c in calls_of("mistral", text)] == expected
    # auto picks them up as well (it tries mistral before the plain-JSON formats)
    assert [(c.name, c.arguments) for c in get_parser("auto").parse(text).calls] == expected


def test_mistral_unmarked_call_after_content_needs_a_known_tool():
    text = 'Let me check. get_weather{"city": "Paris"}'
    assert get_parser("mistral").parse(text) == ParsedTurn(text, [], [])  # no tools: prose
    turn = get_parser("mistral").parse(text, tools=tools("get_weather"))
    assert turn.calls == [ParsedCall("get_weather", {"city": "Paris"})]
    assert turn.content == "Let me check."
    # a known name, but the call does not end the turn: prose that mentions it
    mid = 'Call get_weather{"city": "Paris"} when you need it.'
    assert get_parser("mistral").parse(mid, tools=tools("get_weather")).calls == []
    # an unknown name after content is not read either
    assert get_parser("mistral").parse(text, tools=tools("get_time")).calls == []


@pytest.mark.parametrize(
    "text",
    [
        "The answer is 4.",
        "Use f(x) here.",
        'The result{"a": 1} shows it.',  # a bare name{json} in the middle of prose
        "[1, 2, 3]",
        '[{"answer": 4}]',  # a JSON list that is not calls
        "[Note] this is text",
        "set {x} = 1",
        '{"name": "f", "arguments": {}}',  # Llama's / plain JSON's format, not Mistral's
    ],
)
def test_mistral_near_misses_stay_content(text):
    assert get_parser("mistral").parse(text) == ParsedTurn(text.strip(), [], [])


def test_mistral_reasoning_is_never_read_for_calls():
    # Magistral thinks in [THINK]...[/THINK]; a call written while thinking is not a call.
    text = '[THINK]I could call get_weather{"city": "Oslo"}[/THINK][TOOL_CALLS]get_weather{"city": "Paris"}'
    turn = get_parser("mistral").parse(text)
    assert turn.calls == [ParsedCall("get_weather", {"city": "Paris"})] and not turn.errors
    thinking_only = '[THINK]maybe [TOOL_CALLS]f[ARGS]{"x": 1}[/THINK]The answer is 4.'
    turn = get_parser("mistral").parse(thinking_only)
    assert turn.calls == [] and turn.errors == [] and turn.content == "The answer is 4."


def test_mistral_cut_off_calls_are_errors():
    for text in [
        '[TOOL_CALLS]bash{"command": "print(\\"hello',  # VLLM_MISTRAL "complex": a partial call there
        "[TOOL_CALLS]toolname_no_args",  # VLLM_MISTRAL: nothing after the name
        '[TOOL_CALLS]f[ARGS]{"a": [1, 2',
        "[TOOL_CALLS]f[ARGS]",
        '[TOOL_CALLS][{"name": "f", "arguments": {"a": 1}}, {"name": "g", "argu',
    ]:
        turn = get_parser("mistral").parse(text)
        assert turn.errors and "cut off" in turn.errors[-1].message, (text, turn)
        assert all(call.name == "f" for call in turn.calls)  # only complete calls are kept


# --- Llama 3.1 / 3.2 JSON ------------------------------------------------------------------------

LLAMA_CASES = [
    # <|python_tag|> repeated between calls (SGL_LLAMA_RS test_multiple_json_with_separator_customized)
    (
        '<|python_tag|>{"name": "get_weather", "arguments": {}}<|python_tag|>{"name": '
        '"get_tourist_attractions", "arguments": {}}',
        [("get_weather", {}), ("get_tourist_attractions", {})],
    ),
    # ';' with no space (SGL_LLAMA_RS test_multiple_json_with_separator)
    (
        '<|python_tag|>{"name": "get_weather", "arguments": {"city": "Paris"}};{"name": '
        '"get_tourist_attractions", "arguments": {"city": "Paris"}}',
        [("get_weather", {"city": "Paris"}), ("get_tourist_attractions", {"city": "Paris"})],
    ),
    # ' ; ' (VLLM_LLAMA test_extract_tool_calls_multiple_json_with_whitespace)
    (
        '{"name": "searchTool", "parameters": {"query": "test1"}} ; {"name": '
        '"getOpenIncidentsTool", "parameters": {}} ; {"name": "searchTool", "parameters": '
        '{"query": "test2"}}',
        [
            ("searchTool", {"query": "test1"}),
            ("getOpenIncidentsTool", {}),
            ("searchTool", {"query": "test2"}),
        ],
    ),
    # one per line (VLLM_LLAMA test_extract_tool_calls_streaming_parallel_separators, "\n")
    (
        '{"name": "searchTool", "parameters": {"query": "test1"}}\n'
        '{"name": "getOpenIncidentsTool", "parameters": {}}',
        [("searchTool", {"query": "test1"}), ("getOpenIncidentsTool", {})],
    ),
    # prose around the call (VLLM_LLAMA test_extract_tool_calls_simple)
    (
        'Here is the result: {"name": "getOpenIncidentsTool", "parameters": {}} Would you like '
        "to know more?",
        [("getOpenIncidentsTool", {})],
    ),
    # prose, then <|python_tag|> (SGL_LLAMA_RS test_llama_real_world_output, Llama 3.2)
    (
        'I\'ll search for that information for you.\n\n<|python_tag|>{"name": "web_search", '
        '"arguments": {"query": "Llama 3.2 model capabilities", "num_results": 5, '
        '"search_type": "recent"}}',
        [
            (
                "web_search",
                {
                    "query": "Llama 3.2 model capabilities",
                    "num_results": 5,
                    "search_type": "recent",
                },
            )
        ],
    ),
    # escaped quotes and braces inside strings (VLLM_LLAMA, quotes and brackets tests)
    (
        '{"name": "parserTool", "parameters": {"text": "He said \\"Hello {world}\\""}}',
        [("parserTool", {"text": 'He said "Hello {world}"'})],
    ),
    # a brace in trailing prose (VLLM_LLAMA test_extract_tool_calls_brace_in_trailing_text)
    (
        '{"name": "searchTool", "parameters": {"query": "test"}} I used {searchTool} for this.',
        [("searchTool", {"query": "test"})],
    ),
    # trailing end token then noise (Llama 3.1 prompt format: <|eom_id|> ends a tool call turn)
    (
        '<|python_tag|>{"name": "n_tool_4", "parameters": {"a": 1}}<|eot_id|> some trailing noise',
        [("n_tool_4", {"a": 1})],
    ),
    # the <function=...> form of Llama 3.1's custom tools (meta-llama/llama-models, llama3_1
    # prompt_format.md: "<function=spotify_trending_songs>{"n": "5"}</function>")
    (
        '<function=spotify_trending_songs>{"n": "5"}</function><|eom_id|>',
        [("spotify_trending_songs", {"n": "5"})],
    ),
]


@pytest.mark.parametrize(("text", "expected"), LLAMA_CASES)
def test_llama3_variants(text, expected):
    assert [(c.name, c.arguments) for c in calls_of("llama3_json", text)] == expected


def test_llama3_every_call_after_repeated_python_tags_is_kept():
    text = "".join(
        f'<|python_tag|>{{"name": "f{i}", "parameters": {{"i": {i}}}}}' for i in range(5)
    )
    assert calls_of("llama3_json", text) == [ParsedCall(f"f{i}", {"i": i}) for i in range(5)]


@pytest.mark.parametrize(
    "text",
    [
        "This is just some text without any tool calls",
        'The person is {"name": "Bob", "age": 3}.',  # JSON with a name in prose: not a call
        'Config: {"name": "x", "parameters": {}, "version": 2}',  # more keys than a call has
        '```json\n{"answer": 4}\n```',
    ],
)
def test_llama3_near_misses(text):
    turn = get_parser("llama3_json").parse(text)
    assert turn.calls == [] and turn.content == text.strip()


def test_llama3_cut_off_and_malformed():
    # VLLM_LLAMA test_extract_tool_calls_missing_name_key: vLLM calls it content; here a call
    # object without its name is an error, never a silent "no call"
    turn = get_parser("llama3_json").parse('{"parameters": {}}')
    assert turn.calls == [] and "missing 'name'" in turn.errors[0].message
    cut = get_parser("llama3_json").parse('<|python_tag|>{"name": "f", "parameters": {"a": 1')
    assert cut.calls == [] and "cut off" in cut.errors[0].message
    cut = get_parser("llama3_json").parse('<function=f>{"city": "Par')
    assert cut.calls == [] and "cut off" in cut.errors[0].message
    # VLLM_LLAMA test_extract_tool_calls_invalid_json: broken, not cut off (an error, not prose)
    bad = get_parser("llama3_json").parse('{"name": "invalidTool", "parameters": {invalid json}')
    assert bad.calls == [] and "cut off" not in bad.errors[0].message
    # complete call without its </function> or end token: read
    assert calls_of("llama3_json", '<function=f>{"a": 1}') == [ParsedCall("f", {"a": 1})]


# --- Pythonic (Llama 3.2 / 4) --------------------------------------------------------------------

PYTHONIC_CASES = [
    # text before (SGL_PARSER TestPythonicDetector test_parse_streaming_text_before_tool_call)
    (
        "This is some text before [get_weather(location='London')]",
        [("get_weather", {"location": "London"})],
        "This is some text before",
    ),
    # text after (SGL_PARSER test_parse_streaming_text_after_tool_call)
    (
        "[get_weather(location='Tokyo')] Here's the forecast:",
        [("get_weather", {"location": "Tokyo"})],
        "Here's the forecast:",
    ),
    # two lists with text between (SGL_PARSER test_parse_streaming_multiple_tool_calls)
    (
        "[get_weather(location='Berlin')] and [search(query='restaurants')]",
        [("get_weather", {"location": "Berlin"}), ("search", {"query": "restaurants"})],
        "and",
    ),
    # Llama 4 tags with text on both sides (SGL_PARSER test_detect_and_parse_with_python_start_and_end_token)
    (
        "User wants to get the weather in Mars. <|python_start|>[get_weather(location='Mars', "
        "unit='celsius')]<|python_end|> In this way we will get the weather in Mars.",
        [("get_weather", {"location": "Mars", "unit": "celsius"})],
        "User wants to get the weather in Mars.\nIn this way we will get the weather in Mars.",
    ),
    # <|python_start|> without <|python_end|> (VLLM_LLAMA4 parallel_calls_nonstreaming)
    (
        "<|python_start|>[get_weather(city='LA', metric='C'), register_user(name='Doe', age=9)]",
        [
            ("get_weather", {"city": "LA", "metric": "C"}),
            ("register_user", {"name": "Doe", "age": 9}),
        ],
        "",
    ),
    # escaped quotes (VLLM_PYTHONIC ESCAPED_STRING_FUNCTION_OUTPUT)
    (
        r"[get_weather(city='Martha\'s Vineyard', metric='\"cool units\"')]",
        [("get_weather", {"city": "Martha's Vineyard", "metric": '"cool units"'})],
        "",
    ),
    # nested literals (SGL_PARSER test_parse_streaming_nested_brackets_dict)
    (
        "[search(query='test', config={'options': [1, 2], 'nested': {'key': 'value'}})]",
        [("search", {"query": "test", "config": {"options": [1, 2], "nested": {"key": "value"}}})],
        "",
    ),
]


@pytest.mark.parametrize(("text", "expected", "content"), PYTHONIC_CASES)
def test_pythonic_variants(text, expected, content):
    turn = get_parser("pythonic").parse(text)
    assert turn.errors == [] and turn.content == content
    assert [(c.name, c.arguments) for c in turn.calls] == expected


@pytest.mark.parametrize(
    "text",
    [
        "How can I help you today?",  # VLLM_PYTHONIC test_no_tool_call
        "See [Note(s)] for details.",  # a bracket in prose with a call-like inside
        "The list [1, 2, 3] is sorted.",
        "Pick one of [a, b].",
        "Compare [x(1)] and [y(2)] in the paper.",  # positional: not this format's calls
    ],
)
def test_pythonic_near_misses(text):
    assert get_parser("pythonic").parse(text) == ParsedTurn(text, [], [])


def test_pythonic_cut_off_and_bad_siblings():
    # SGL_PARSER test_parse_streaming_partial_tool_call: the text ends inside the list
    turn = get_parser("pythonic").parse("Let me check the weather: [get_weather(location=")
    assert turn.calls == [] and "cut off" in turn.errors[0].message
    assert turn.content == "Let me check the weather:"
    # VLLM_PYTHONIC test_non_finite_argument_rejected / bad sibling: the good call is kept
    turn = get_parser("pythonic").parse(
        "[calc(x=1e999), get_weather(city='San Francisco', metric='celsius')]"
    )
    assert turn.calls == [ParsedCall("get_weather", {"city": "San Francisco", "metric": "celsius"})]
    assert len(turn.errors) == 1 and turn.errors[0].message.startswith("tool call 1:")
    turn = get_parser("pythonic").parse("[bad(x=b'z'), get_weather(city='LA', metric='C')]")
    assert turn.calls == [ParsedCall("get_weather", {"city": "LA", "metric": "C"})]
    # VLLM_LLAMA4 mismatched brackets: an error, not a call
    turn = get_parser("pythonic").parse("<|python_start|>[foo(x=1])]<|python_end|>")
    assert turn.calls == [] and "invalid Python call list" in turn.errors[0].message


# --- Hermes --------------------------------------------------------------------------------------

HERMES_CASES = [
    # Hermes-2-Pro with arguments first (vllm-project/vllm#5649, K-Mistele's output)
    (
        '<tool_call>\n{"arguments": {"city": "Dallas", "state": "TX", "unit": "fahrenheit"}, '
        '"name": "get_current_weather"}\n</tool_call>',
        [("get_current_weather", {"city": "Dallas", "state": "TX", "unit": "fahrenheit"})],
    ),
    # left open until the end of the text (VLLM_HERMES test_hermes_parser_non_streaming_tool_call_until_eos)
    (
        '<tool_call>\n{"name": "final_answer", "arguments": {"trigger": true}}',
        [("final_answer", {"trigger": True})],
    ),
    # double-encoded arguments, as Granite 4 writes them (VLLM_HERMES serialized_arguments)
    (
        '<tool_call>\n{"name": "get_db_config", "arguments": "{\\"param\\": \\"max_connections\\"}"}\n</tool_call>',
        [("get_db_config", {"param": "max_connections"})],
    ),
    # the JSON inside a ```json fence within the block (Qwen2.5-Coder habit; e.g. the test
    # "handles <tool_call> with markdown code fences inside" of public agent clients, and
    # ardanlabs/kronk#950 on Qwen2.5-Coder fencing its call envelopes)
    (
        '<tool_call>\n```json\n{"name": "current_time", "arguments": {"timezone": "EST"}}\n```\n</tool_call>',
        [("current_time", {"timezone": "EST"})],
    ),
    (
        'Thinking...\n<tool_call>\n```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```\n</tool_call>\nDone.',
        [("get_weather", {"city": "Paris"})],
    ),
    # single quotes (a computer-use agent's "common server variants" test; vllm-project/vllm#5649
    # notes Mistral writes single-quoted "JSON" too)
    (
        "<tool_call>{'name': 'computer_use', 'arguments': {'action': 'wait'}}</tool_call>",
        [("computer_use", {"action": "wait"})],
    ),
    # streaming-era regression text (VLLM_HERMES test_hermes_streaming_multiple_tool_calls)
    (
        '<tool_call>{"name": "search", "arguments": {"q": "cats"}}</tool_call>'
        '<tool_call>{"name": "search", "arguments": {"q": "dogs"}}</tool_call>',
        [("search", {"q": "cats"}), ("search", {"q": "dogs"})],
    ),
]


@pytest.mark.parametrize(("text", "expected"), HERMES_CASES)
def test_hermes_variants(text, expected):
    assert [(c.name, c.arguments) for c in calls_of("hermes", text)] == expected


@pytest.mark.parametrize(
    "text",
    [
        # GLM-4.5 (vllm-project/vllm tests/tool_parsers/test_glm4_moe_tool_parser.py layout)
        "<tool_call>get_current_weather\n<arg_key>city</arg_key>\n<arg_value>Dallas</arg_value>\n"
        "<arg_key>state</arg_key>\n<arg_value>TX</arg_value>\n</tool_call>",
        "I will check.\n<tool_call>get_time\n</tool_call>",
        # Qwen3-Coder XML (vllm-project/vllm tests/tool_parsers/test_qwen3coder_tool_parser.py layout)
        "<tool_call>\n<function=get_current_weather>\n<parameter=city>\nDallas\n</parameter>\n"
        "</function>\n</tool_call>",
    ],
)
def test_hermes_leaves_glm_and_qwen_xml_blocks_alone(text):
    turn = get_parser("hermes").parse(text)
    assert turn.calls == [] and turn.errors == []  # not "invalid JSON": another format's block


def test_hermes_still_reports_its_own_broken_blocks():
    for text in ["<tool_call>not valid json</tool_call>", "<tool_call>\n</tool_call>",
                 '<tool_call>{"name": "f", "arguments": {"a": }}</tool_call>']:  # fmt: skip
        turn = get_parser("hermes").parse(text)
        assert (
            turn.calls == [] and len(turn.errors) == 1 and "cut off" not in turn.errors[0].message
        )


# --- Cut-off policy across formats ---------------------------------------------------------------

COMPLETE_BUT_UNCLOSED = [
    ("hermes", '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n'),
    ("qwen3_xml", "<tool_call>\n<function=f>\n<parameter=a>\n1\n</parameter>\n</function>\n"),
    ("deepseek_v31", '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f<｜tool▁sep｜>{"a": 1}'),
    (
        "deepseek_v3",
        '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{"a": 1}\n```',
    ),
    (
        "deepseek_v3",
        '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{"a": 1}',
    ),
    ("llama3_json", '<|python_tag|>{"name": "f", "parameters": {"a": 1}}'),
    ("llama3_json", '<function=f>{"a": 1}'),
    ("mistral", '[TOOL_CALLS][{"name": "f", "arguments": {"a": 1}}'),
    ("pythonic", "<|python_start|>[f(a=1)]"),
    ("json", '```json\n{"name": "f", "arguments": {"a": 1}}'),
]
CUT_INSIDE = [
    ("hermes", '<tool_call>\n{"name": "f", "arguments": {"a": '),
    ("qwen3_xml", "<tool_call>\n<function=f>\n<parameter=a>\n1"),
    ("deepseek_v31", '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f<｜tool▁sep｜>{"a": 1'),
    (
        "deepseek_v3",
        '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{"a": [1, ',
    ),
    ("llama3_json", '<|python_tag|>{"name": "f", "parameters": {"a": "x'),
    ("mistral", '[TOOL_CALLS]f[ARGS]{"a": 1'),
    ("pythonic", "[f(a=1, b='x"),
    ("json", '{"name": "f", "arguments": {"a": tr'),
]


@pytest.mark.parametrize(("parser", "text"), COMPLETE_BUT_UNCLOSED)
def test_a_complete_call_whose_closing_marker_is_missing_is_read(parser, text):
    assert calls_of(parser, text) == [ParsedCall("f", {"a": 1})]


@pytest.mark.parametrize(("parser", "text"), CUT_INSIDE)
def test_a_call_cut_off_inside_its_arguments_is_an_error_never_a_call(parser, text):
    turn = get_parser(parser).parse(text)
    assert turn.calls == [] and len(turn.errors) == 1, turn
    assert (
        turn.errors[0].message.startswith("tool call 1: ") and "cut off" in turn.errors[0].message
    )
