"""The ``harmony`` parser (GPT-OSS): calls are commentary messages addressed to a function;
the analysis channel is reasoning, never a call (the layout of OpenAI's harmony format docs)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rlenv.tools.parsers import ParsedCall, ParsedTurn, get_parser

HARMONY = get_parser("harmony")
CALL = (
    "<|channel|>commentary to=functions.get_weather <|constrain|>json"
    '<|message|>{"city": "Paris"}<|call|>'
)


def test_a_call_after_reasoning():
    text = (
        "<|channel|>analysis<|message|>The user wants the weather; call get_weather.<|end|>"
        f"<|start|>assistant{CALL}"
    )
    turn = HARMONY.parse(text)
    assert turn.calls == [ParsedCall("get_weather", {"city": "Paris"})]
    assert turn.content == "" and not turn.errors  # the reasoning is not content
    assert turn.reasoning == "The user wants the weather; call get_weather."


def test_the_recipient_may_stand_before_the_channel():
    text = '<|start|>assistant to=functions.f<|channel|>commentary json<|message|>{"x": 1}<|call|>'
    assert HARMONY.parse(text).calls == [ParsedCall("f", {"x": 1})]


def test_the_final_channel_is_the_content_and_analysis_is_never_a_call():
    text = (
        '<|channel|>analysis to=functions.f<|message|>{"x": 1}<|call|>'  # a call in reasoning
        "<|start|>assistant<|channel|>final<|message|>It is sunny.<|return|>"
    )
    turn = HARMONY.parse(text)
    assert turn.calls == [] and turn.errors == [] and turn.content == "It is sunny."
    assert turn.reasoning == '{"x": 1}'


def test_a_call_whose_end_token_was_stripped_is_read():
    """Engines strip the stop token ``<|call|>``: complete JSON without it is the call."""
    text = '<|channel|>commentary to=functions.f <|constrain|>json<|message|>{"x": [1, "}"]} \n'
    assert HARMONY.parse(text) == ParsedTurn("", [ParsedCall("f", {"x": [1, "}"]})], [])
    two = text.strip() + "<|start|>assistant" + CALL  # the next message follows directly
    assert HARMONY.parse(two).calls == [
        ParsedCall("f", {"x": [1, "}"]}),
        ParsedCall("get_weather", {"city": "Paris"}),
    ]
    # Complete JSON followed by more text, with no end token: not a call.
    trailing = HARMONY.parse(text + "and more")
    assert not trailing.calls and "unexpected text" in trailing.errors[0].message


def test_cut_off_and_malformed_calls_are_errors():
    cut = HARMONY.parse('<|channel|>commentary to=functions.f <|constrain|>json<|message|>{"x": 1')
    assert not cut.calls and cut.errors[0].message == (
        "tool call 1: the call was cut off before <|call|> "
        "(invalid JSON at line 1, column 8: Expecting ',' delimiter)"
    )
    for header_only in (
        "<|channel|>commentary to=functions.get_weather <|constrain|>json",
        "Let me check.<|start|>assistant<|channel|>commentary to=functions.get_wea",
    ):
        turn = HARMONY.parse(header_only)  # cut inside the header: never silently dropped
        assert not turn.calls and "cut off" in turn.errors[0].message
    broken = HARMONY.parse("<|channel|>commentary to=functions.f<|message|>{x: 1}<|call|>")
    assert not broken.calls and "JSON" in broken.errors[0].message
    bad_name = HARMONY.parse("<|channel|>commentary to=functions.a!b<|message|>{}<|call|>")
    assert not bad_name.calls and "invalid function name" in bad_name.errors[0].message
    # Broken JSON before <|call|> is malformed, not cut off.
    assert "cut off" not in broken.errors[0].message


def test_a_call_to_a_tool_not_offered_is_an_error():
    tools = [{"type": "function", "function": {"name": "get_time"}}]
    turn = HARMONY.parse(CALL, tools=tools)
    assert not turn.calls and turn.errors[0].message == (
        "tool call 1: unknown tool 'get_weather'; the tools are: get_time"
    )


def test_auto_reads_harmony_without_confusing_it_with_other_formats():
    auto = get_parser("auto")
    assert auto.parse(CALL).calls == [ParsedCall("get_weather", {"city": "Paris"})]
    assert HARMONY.parse('<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>').calls == []
    assert auto.parse('<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>').calls == [
        ParsedCall("f", {})
    ]
    assert auto.parse("The answer is 4.").calls == []


_ARGS = st.dictionaries(
    st.sampled_from(["a", "b", "city"]),
    st.one_of(st.integers(-9, 9), st.text(max_size=10), st.booleans(), st.none()),
    max_size=3,
)


@settings(max_examples=200, deadline=None)
@given(
    calls=st.lists(st.builds(ParsedCall, st.sampled_from(["f", "get_weather"]), _ARGS), max_size=3),
    content=st.text(alphabet="abc .,!?", max_size=20),
)
def test_parse_of_render_is_the_identity(calls, content):
    turn = HARMONY.parse(HARMONY.render(calls, content))
    assert turn.calls == calls and not turn.errors and turn.content == content.strip()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["<|start|>", "assistant", "<|channel|>", "analysis", "commentary", "final",
             " to=functions.f", "<|message|>", "{", "}", '"x": 1', "<|call|>", "<|end|>", "text"]
        ),
        max_size=20,
    ).map("".join)
)  # fmt: skip
def test_fuzzed_markup_never_raises(text):
    turn = HARMONY.parse(text)
    assert isinstance(turn.content, str) and all(isinstance(c.arguments, dict) for c in turn.calls)
    assert isinstance(turn.reasoning, str)
