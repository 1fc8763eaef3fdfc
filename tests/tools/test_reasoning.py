"""Reasoning set apart from content and calls (issue 17, point 2), and calls to unknown tools.

Every built-in parser reads a turn with its reasoning blanked out (``_Parser._guarded``):
``<think>...</think>`` (Qwen3, DeepSeek-R1, GLM, Kimi, MiniMax), ``[THINK]...[/THINK]``
(Magistral, Ministral 3), and Harmony's analysis channel (GPT-OSS). A call written inside the
reasoning is not a call, unless the parser's family writes its real calls there
(``calls_in_reasoning``, Kimi-K2-Thinking); the reasoning is never content.
"""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rlenv.tools.parsers import (
    AutoParser,
    CallError,
    HermesParser,
    ParsedCall,
    ParsedTurn,
    get_parser,
    list_parsers,
    parse_message,
)

# The parser, and the reasoning markers of the families that use it.
THINKING = {
    "hermes": ("<think>", "</think>"),  # Qwen3
    "qwen3_xml": ("<think>", "</think>"),  # Qwen3.5, Qwen3-Coder
    "deepseek_v3": ("<think>", "</think>"),  # DeepSeek-R1
    "deepseek_v31": ("<think>", "</think>"),  # DeepSeek-V3.1 (thinking mode)
    "mistral": ("[THINK]", "[/THINK]"),  # Magistral 2509, Ministral 3
    "llama3_json": ("<think>", "</think>"),
    "json": ("<think>", "</think>"),
}
FORMATS = list(THINKING)
INNER = ParsedCall("delete_everything", {"really": True})  # written while thinking: not a call
OUTER = ParsedCall("get_weather", {"city": "Paris"})


def render(fmt: str, calls: list[ParsedCall], content: str = "") -> str:
    return get_parser(fmt).render(calls, content)


def markers(fmt: str) -> tuple[str, str]:
    return THINKING[fmt]


# --- A call inside the reasoning is not a call -------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_call_inside_reasoning_is_not_a_call(fmt):
    open_, close = markers(fmt)
    text = f"{open_}The user may want {render(fmt, [INNER])} but no.{close}\n\nIt is sunny."
    turn = get_parser(fmt).parse(text)
    assert turn.calls == [] and turn.errors == []
    assert turn.content == "It is sunny."
    assert turn.reasoning.startswith("The user may want") and "delete_everything" in turn.reasoning


@pytest.mark.parametrize("fmt", FORMATS)
def test_only_the_call_outside_the_reasoning_is_read(fmt):
    open_, close = markers(fmt)
    text = f"{open_}Maybe {render(fmt, [INNER])}?{close}\n" + render(fmt, [OUTER], "Checking.")
    turn = get_parser(fmt).parse(text)
    assert turn.calls == [OUTER] and turn.errors == []
    assert turn.content == "Checking."
    assert "delete_everything" not in turn.content and "Maybe" in turn.reasoning


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_block_the_prompt_opened(fmt):
    """The chat template started the assistant turn with the opener (DeepSeek-R1, Qwen3
    thinking models): the completion holds the closer only; all before it is reasoning."""
    _, close = markers(fmt)
    text = f"I could call {render(fmt, [INNER])}.\nBetter not.\n{close}\n\n" + render(
        fmt, [OUTER], "Checking."
    )
    turn = get_parser(fmt).parse(text)
    assert turn.calls == [OUTER] and turn.errors == []
    assert turn.content == "Checking."
    assert turn.reasoning.startswith("I could call") and turn.reasoning.endswith("Better not.")


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_unclosed_block_is_all_reasoning(fmt):
    """Generation stopped while thinking: no calls, no errors, no content."""
    open_, _ = markers(fmt)
    text = f"{open_}Let me think. {render(fmt, [INNER])} and then"
    turn = get_parser(fmt).parse(text)
    assert turn == ParsedTurn("", [], [], text[len(open_) :].strip())


@pytest.mark.parametrize("fmt", FORMATS)
def test_several_blocks(fmt):
    open_, close = markers(fmt)
    text = f"{open_}First thought.{close}\n{open_}Second {render(fmt, [INNER])}{close}\n" + render(
        fmt, [OUTER], "Checking."
    )
    turn = get_parser(fmt).parse(text)
    assert turn.calls == [OUTER] and turn.errors == []
    assert turn.content == "Checking."
    assert turn.reasoning.split("\n")[0] == "First thought."
    assert turn.reasoning.count("delete_everything") == 1


def test_text_between_blocks_keeps_its_words_apart():
    turn = get_parser("hermes").parse("Yes<think>hmm</think>it is<think>\nsure\n</think>\nsunny")
    assert turn.content == "Yes it is\nsunny" and turn.reasoning == "hmm\nsure"


def test_errors_point_into_the_whole_text():
    """The reasoning is blanked, not cut out: lines and columns are the model's own."""
    text = '<think>\nplan\n</think>\n<tool_call>\n{"name": "f", "arguments": {"a" 1}}\n</tool_call>'
    (error,) = get_parser("hermes").parse(text).errors
    assert (
        error.message == "tool call 1: invalid JSON at line 5, column 33: Expecting ':' delimiter"
    )


def test_both_marker_families_are_reasoning_in_any_parser():
    """Magistral 2506 wrote ``<think>`` as text, 2509 the ``[THINK]`` tokens: both are set
    apart whatever the parser."""
    mistral = get_parser("mistral")
    for open_, close in (("<think>", "</think>"), ("[THINK]", "[/THINK]")):
        turn = mistral.parse(
            f"{open_}hmm [TOOL_CALLS]x[ARGS]{{}}{close}" + render("mistral", [OUTER])
        )
        assert turn.calls == [OUTER] and turn.reasoning == "hmm [TOOL_CALLS]x[ARGS]{}"


# Real strings: vllm-project/vllm, tests/reasoning/test_mistral_reasoning_parser.py
# (REASONING_WITH_THINK, NEW_LINE, THINK_NO_END, COMPLETE_REASONING_WITH_THINK).
@pytest.mark.parametrize(
    ("text", "reasoning", "content"),
    [
        ("[THINK]This is a reasoning section[/THINK]This is the rest",
         "This is a reasoning section", "This is the rest"),
        ("Before\n[THINK]This is a reasoning section[/THINK]\nThis is the rest",
         "This is a reasoning section", "Before\n\nThis is the rest"),
        ("[THINK]This is a reasoning section", "This is a reasoning section", ""),
        ("[THINK]This is a reasoning section[/THINK]", "This is a reasoning section", ""),
        ("[/THINK]This is the rest", "", "This is the rest"),
    ],
)  # fmt: skip
def test_magistral_reasoning_as_vllm_splits_it(text, reasoning, content):
    turn = get_parser("mistral").parse(text)
    assert (turn.reasoning, turn.content, turn.calls, turn.errors) == (reasoning, content, [], [])


def test_a_lone_closer_after_a_block_stays_content():
    turn = get_parser("hermes").parse("<think>a</think>b</think>c")
    assert turn.reasoning == "a" and turn.content == "b</think>c"


# --- Harmony: the analysis channel -------------------------------------------------------------


def test_harmony_analysis_is_the_reasoning_and_never_a_call():
    text = (
        "<|channel|>analysis<|message|>Need weather.<|end|>"
        "<|start|>assistant<|channel|>analysis to=functions.delete_everything<|message|>{}<|call|>"
        "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json"
        '<|message|>{"city": "Paris"}<|call|>'
    )
    turn = get_parser("harmony").parse(text)
    assert turn.calls == [OUTER] and turn.errors == []
    assert turn.content == "" and turn.reasoning == "Need weather.\n{}"


# --- Families whose calls live in their reasoning ----------------------------------------------


class ThinkingHermes(HermesParser):
    """A stand-in for a family that writes its real calls inside ``<think>`` (as
    Kimi-K2-Thinking does), so that the policy is tested apart from any one format."""

    name = "thinking_hermes"
    calls_in_reasoning = True


def test_calls_in_reasoning_are_read_when_the_family_writes_them_there():
    parser = ThinkingHermes()
    text = f"<think>I will look it up. {render('hermes', [INNER])}</think>" + render(
        "hermes", [OUTER], "Done."
    )
    turn = parser.parse(text)
    assert turn.calls == [INNER, OUTER] and turn.errors == []
    assert turn.content == "Done."  # the reasoning is still not content
    assert turn.reasoning.startswith("I will look it up.") and "<tool_call>" in turn.reasoning
    # The same text under the default policy: the call in the reasoning is not read.
    assert get_parser("hermes").parse(text).calls == [OUTER]


def test_calls_in_an_unclosed_reasoning_block_are_read_too():
    text = f"<think>Let me call it.\n{render('hermes', [INNER])}"
    turn = ThinkingHermes().parse(text)
    assert turn.calls == [INNER] and turn.content == ""
    assert turn.reasoning.startswith("Let me call it.")


def test_kimi_k2_declares_calls_in_reasoning_when_it_is_registered():
    if "kimi_k2" not in list_parsers():
        pytest.skip("kimi_k2 is not registered in this tree")
    assert get_parser("kimi_k2").calls_in_reasoning is True


# --- Parsers of one's own -----------------------------------------------------------------------


class OneLinePerCall:
    """A third-party parser: not a subclass, no ``calls_in_reasoning``, no ``tools``."""

    name = "one_line_per_call"

    def parse(self, text: str) -> ParsedTurn:
        lines = text.splitlines()
        calls = [ParsedCall(line[1:], {}) for line in lines if line.startswith("/")]
        content = "\n".join(line for line in lines if not line.startswith("/"))
        return ParsedTurn(content, calls, [])

    def render(self, calls, content=""):
        return "\n".join([content, *(f"/{call.name}" for call in calls)]).strip()


def test_parsers_of_ones_own_need_no_reasoning_attribute():
    message = {"role": "assistant", "content": "Sure.\n/get_weather"}
    turn = parse_message(message, OneLinePerCall())
    assert turn.calls == [ParsedCall("get_weather", {})] and turn.reasoning == ""
    auto = AutoParser([OneLinePerCall(), get_parser("hermes")])
    assert auto.parse("<think>hm</think>\n/get_time").calls == [ParsedCall("get_time", {})]


# --- Unknown tools -----------------------------------------------------------------------------

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
]


@pytest.mark.parametrize("fmt", [*FORMATS, "harmony", "auto"])
def test_a_call_to_an_unknown_tool_is_an_error_when_the_tools_are_given(fmt):
    parser = get_parser(fmt)
    text = render("hermes" if fmt == "auto" else fmt, [ParsedCall("get_wether", {"city": "X"})])
    turn = parser.parse(text, tools=TOOLS)
    assert turn.calls == [] and turn.errors == [
        CallError(
            "tool call 1: unknown tool 'get_wether' (did you mean 'get_weather'?); "
            "the tools are: get_time, get_weather",
            '{"name": "get_wether", "arguments": {"city": "X"}}',
            kind="unknown tool",
        )
    ]
    # Without the schemas nothing says the tool is unknown: the call is read.
    assert parser.parse(text).calls == [ParsedCall("get_wether", {"city": "X"})]


def test_an_unknown_tool_keeps_its_number_among_good_and_broken_calls():
    text = (
        '<tool_call>{"name": "get_time"}</tool_call>'
        '<tool_call>{"name": </tool_call>'
        '<tool_call>{"name": "launch_rockets"}</tool_call>'
        '<tool_call>{"name": "get_weather"}</tool_call>'
    )
    turn = get_parser("hermes").parse(text, tools=TOOLS)
    assert turn.calls == [ParsedCall("get_time", {}), ParsedCall("get_weather", {})]
    assert [error.message.split(":")[0] for error in turn.errors] == ["tool call 2", "tool call 3"]
    assert turn.errors[1].message == (
        "tool call 3: unknown tool 'launch_rockets'; the tools are: get_time, get_weather"
    )


def test_unknown_tools_through_parse_message_are_reported_once():
    message = {"role": "assistant", "content": render("hermes", [ParsedCall("nope", {})])}
    turn = parse_message(message, "hermes", tools=TOOLS)
    assert turn.calls == [] and len(turn.errors) == 1  # the parser and parse_message both check
    openai = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
            {"id": "b", "type": "function", "function": {"name": "nope", "arguments": "{}"}},
        ],
    }
    turn = parse_message(openai, tools=TOOLS)
    assert turn.calls == [ParsedCall("get_time", {}, "a")]
    assert turn.errors[0].message.startswith("tool call 2: unknown tool 'nope'")
    custom = {"role": "assistant", "content": "/get_time\n/nope"}
    turn = parse_message(custom, OneLinePerCall(), tools=TOOLS)
    assert turn.calls == [ParsedCall("get_time", {})]
    assert turn.errors[0].message.startswith("tool call 2: unknown tool 'nope'")


def test_a_long_list_of_tools_is_shortened():
    tools = [{"type": "function", "function": {"name": f"tool_{i:02}"}} for i in range(40)]
    (error,) = (
        get_parser("hermes").parse('<tool_call>{"name": "x"}</tool_call>', tools=tools).errors
    )
    assert error.message.endswith("tool_29, ... (10 more)")


def test_parse_message_reads_a_servers_reasoning_field_and_think_blocks():
    message = {
        "role": "assistant",
        "content": "It is sunny.",
        "reasoning_content": "The user wants the weather.",
    }
    turn = parse_message(message, "hermes")
    assert turn.content == "It is sunny." and turn.reasoning == "The user wants the weather."
    with_calls = {
        "role": "assistant",
        "content": "<think>plan</think>Checking.",
        "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {}}}],
    }
    turn = parse_message(with_calls)
    assert turn.content == "Checking." and turn.reasoning == "plan"
    # A block inside the text leaves the content as a parsed turn's does, not a run of blanks.
    inside = {**with_calls, "content": "Checking <think>which city?</think> the weather."}
    text_only = {"role": "assistant", "content": inside["content"]}
    assert parse_message(inside).content == parse_message(text_only).content


# --- Fuzzing -----------------------------------------------------------------------------------

_PIECES = [
    "<think>", "</think>", "[THINK]", "[/THINK]", "<tool_call>", "</tool_call>", "[TOOL_CALLS]",
    "[ARGS]", '{"name": "f", "arguments": {}}', "{", "}", "\n", " ", "text", "<|channel|>",
    "analysis", "<|message|>", "<|call|>", " to=functions.f", "<function=f>", "</function>",
]  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=25).map("".join))
def test_fuzzed_reasoning_markup_never_raises(text):
    for name in [*FORMATS, "harmony", "auto", "pythonic"]:
        turn = get_parser(name).parse(text, tools=TOOLS)
        assert isinstance(turn.content, str) and isinstance(turn.reasoning, str)
        assert all(call.name in ("get_weather", "get_time") for call in turn.calls)
        assert not any(error.message.startswith("the ") for error in turn.errors)  # no crash


_THOUGHT = st.lists(
    st.sampled_from(["SECRET", " ", "\n", "<tool_call>", "</tool_call>", "[TOOL_CALLS]", "{", "}"]),
    max_size=8,
).map("".join)


@settings(max_examples=150, deadline=None)
@given(
    fmt=st.sampled_from(FORMATS),
    thoughts=st.lists(_THOUGHT, min_size=1, max_size=3),
    prompt_opened=st.booleans(),
    closed=st.booleans(),
)
def test_reasoning_never_reaches_content_or_calls(fmt, thoughts, prompt_opened, closed):
    assume(len(thoughts) > 1 or closed or not prompt_opened)  # else there is no marker at all
    open_, close = markers(fmt)
    call = render(fmt, [INNER])
    blocks = [f"{open_}{thought}SECRET {call}{close}" for thought in thoughts]
    if prompt_opened:
        blocks[0] = blocks[0][len(open_) :]
    if not closed:
        blocks[-1] = blocks[-1][: -len(close)]
    text = "\nok\n".join(blocks) + ("\n" + render(fmt, [OUTER], "ok") if closed else "")
    turn = get_parser(fmt).parse(text)
    assert "SECRET" not in turn.content and "delete_everything" not in turn.content
    assert INNER not in turn.calls and turn.calls == ([OUTER] if closed else [])
    assert turn.reasoning.count("SECRET") >= len(thoughts)


def test_a_dotted_name_matches_the_underscored_schema_name():
    """OpenAI names hold no dots: BFCL offers ``spotify.play`` as ``spotify_play``."""
    tools = [{"type": "function", "function": {"name": "spotify_play", "parameters": {}}}]
    text = '<tool_call>{"name": "spotify.play", "arguments": {}}</tool_call>'
    assert get_parser("hermes").parse(text, tools=tools).calls[0].name == "spotify.play"
    wrong = '<tool_call>{"name": "spotify.pause", "arguments": {}}</tool_call>'
    assert (
        "unknown tool 'spotify.pause'"
        in get_parser("hermes").parse(wrong, tools=tools).errors[0].message
    )
