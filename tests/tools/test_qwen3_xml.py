"""The ``qwen3_xml`` parser (Qwen3-Coder, Qwen3.5+): XML calls typed by the tools' schemas.

The layout is the one Qwen3-Coder's chat template renders and vLLM's ``qwen3coder`` parser reads
(``<tool_call>\\n<function=NAME>\\n<parameter=ARG>\\nvalue\\n</parameter>\\n</function>\\n</tool_call>``).
"""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from rlenv.tools.parsers import ParsedCall, ParsedTurn, get_parser, parse_message

QWEN = get_parser("qwen3_xml")
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "days": {"type": "integer"},
                    "ratio": {"type": "number"},
                    "metric": {"type": "boolean"},
                    "code": {"type": "string"},
                    "options": {"type": "object"},
                    "tags": {"type": "array"},
                },
            },
        },
    }
]


def block(name: str, **params: str) -> str:
    body = "".join(f"<parameter={k}>\n{v}\n</parameter>\n" for k, v in params.items())
    return f"<tool_call>\n<function={name}>\n{body}</function>\n</tool_call>"


def test_values_are_typed_by_the_schema():
    text = block(
        "get_weather", city="San Francisco", days="3", ratio="0.5", metric="true",
        code='{"a": 1}', options='{"unit": "c"}', tags='["x", "y"]',
    )  # fmt: skip
    turn = QWEN.parse(text, tools=TOOLS)
    assert turn.errors == [] and turn.calls == [
        ParsedCall(
            "get_weather",
            {
                "city": "San Francisco", "days": 3, "ratio": 0.5, "metric": True,
                "code": '{"a": 1}',  # a string in the schema stays a string, though it reads as JSON
                "options": {"unit": "c"}, "tags": ["x", "y"],
            },
        )
    ]  # fmt: skip


def test_without_a_schema_a_value_is_json_when_it_reads_as_json():
    turn = QWEN.parse(block("f", n="3", s="hello world", o='{"a": [1]}'))
    assert turn.calls == [ParsedCall("f", {"n": 3, "s": "hello world", "o": {"a": [1]}})]


def test_a_value_the_schema_refuses_stays_text_for_the_tool_to_reject():
    turn = QWEN.parse(block("get_weather", days="three"), tools=TOOLS)
    assert turn.calls == [ParsedCall("get_weather", {"days": "three"})]


def test_parallel_calls_text_around_and_multiline_values():
    text = (
        "Let me look both up.\n"
        + block("get_weather", city="Paris")
        + "\n"
        + block("get_weather", city="New\nYork", days="2")
        + "\nDone."
    )
    turn = QWEN.parse(text, tools=TOOLS)
    assert [c.arguments for c in turn.calls] == [
        {"city": "Paris"},
        {"city": "New\nYork", "days": 2},
    ]
    assert turn.content == "Let me look both up.\nDone." and not turn.errors


def test_a_block_cut_off_by_the_token_limit_is_an_error_not_a_call():
    turn = QWEN.parse("Sure.\n<tool_call>\n<function=get_weather>\n<parameter=city>\nPar")
    assert turn.calls == [] and "cut off" in turn.errors[0].message
    assert turn.content == "Sure."


def test_malformed_blocks_are_errors_never_silent():
    bad_name = QWEN.parse(block("get weather!", city="x"))
    assert not bad_name.calls and "invalid function name" in bad_name.errors[0].message
    twice = QWEN.parse(
        "<tool_call>\n<function=f>\n<parameter=a>\n1\n</parameter>\n"
        "<parameter=a>\n2\n</parameter>\n</function>\n</tool_call>"
    )
    assert not twice.calls and "given twice" in twice.errors[0].message
    no_end = QWEN.parse("<tool_call>\n<function=f>\n<parameter=a>\n1\n</parameter>\n</tool_call>")
    assert not no_end.calls and "</function>" in no_end.errors[0].message


def test_auto_reads_qwen_xml_and_still_reads_hermes_json():
    xml = block("get_weather", city="Paris", days="2")
    assert get_parser("auto").parse(xml, tools=TOOLS).calls == [
        ParsedCall("get_weather", {"city": "Paris", "days": 2})
    ]
    # Hermes leaves the XML block in the content: not its format, and not broken JSON either
    assert get_parser("hermes").parse(xml) == ParsedTurn(xml, [], [])
    hermes = '<tool_call>\n{"name": "f", "arguments": {"x": 1}}\n</tool_call>'
    assert QWEN.parse(hermes).calls == [] and QWEN.parse(hermes).errors == []
    assert get_parser("auto").parse(hermes).calls == [ParsedCall("f", {"x": 1})]


def test_parse_message_and_tool_env_pass_the_schemas():
    message = {"role": "assistant", "content": block("get_weather", code="123")}
    typed = parse_message(message, "qwen3_xml", tools=TOOLS)
    assert typed.calls[0].arguments == {"code": "123"}  # the schema says string
    assert parse_message(message, "qwen3_xml").calls[0].arguments == {"code": 123}


# Reasoning markers ([THINK], <think>) open reasoning wherever they are, so text avoids them.
_TEXT = st.text(
    alphabet=string.ascii_letters + string.digits + " .,:;!?-_'\"{}[]", max_size=30
).filter(lambda s: "THINK]" not in s)
_VALUES = {
    "city": _TEXT.filter(lambda s: s == s.strip("\n") and "</parameter>" not in s),
    "days": st.integers(-(10**6), 10**6),
    "metric": st.booleans(),
    "options": st.dictionaries(st.sampled_from("abc"), st.integers(0, 9), max_size=3),
}


@settings(max_examples=200, deadline=None)
@given(
    calls=st.lists(
        st.fixed_dictionaries({}, optional=_VALUES).map(
            lambda args: ParsedCall("get_weather", args)
        ),
        max_size=3,
    ),
    content=_TEXT.filter(lambda s: "<" not in s),
)
def test_parse_of_render_is_the_identity(calls, content):
    rendered = QWEN.render(calls, content)
    turn = QWEN.parse(rendered, tools=TOOLS)
    assert turn.calls == calls and not turn.errors
    assert turn.content == content.strip()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["<tool_call>", "</tool_call>", "<function=f>", "</function>", "<parameter=a>",
             "</parameter>", "\n", "1", '{"x":', "}", "text", "<function=", "<parameter="]
        ),
        max_size=20,
    ).map("".join)
)  # fmt: skip
def test_fuzzed_markup_never_raises(text):
    turn = QWEN.parse(text, tools=TOOLS)
    assert isinstance(turn.content, str)
    for call in turn.calls:
        assert isinstance(call.arguments, dict)


def test_a_block_without_the_tool_call_wrapper_and_python_type_names():
    """Found by the public test set (SGLang's Qwen3-Coder tests): a whole ``<function=>`` block
    without ``<tool_call>`` is the call; schemas that say ``float``/``int``/``bool`` type values
    as ``number``/``integer``/``boolean`` would. A ``<function=f>{json}`` is Llama's, not ours."""
    tools = [
        {
            "type": "function",
            "function": {
                "name": "f",
                "parameters": {"properties": {"x": {"type": "float"}, "ok": {"type": "bool"}}},
            },
        }
    ]
    text = "Sure.\n<function=f>\n<parameter=x>\n3.14\n</parameter>\n<parameter=ok>\ntrue\n</parameter>\n</function>"
    turn = QWEN.parse(text, tools=tools)
    assert (turn.content, turn.calls) == ("Sure.", [ParsedCall("f", {"x": 3.14, "ok": True})])
    assert QWEN.parse('<function=f>{"x": 1}</function>').calls == []
    cut = QWEN.parse("<function=f>\n<parameter=x>\n3.")
    assert cut.calls == [] and "cut off" in cut.errors[0].message
