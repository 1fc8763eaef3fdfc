"""The ``deepseek_v3`` and ``deepseek_v31`` parsers: DeepSeek's tool-call blocks with full-width
special tokens (the layouts of DeepSeek-V3/R1's and V3.1's chat templates)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlenv.tools.parsers import ParsedCall, get_parser

BEGIN, END = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"
CALL, CALL_END, SEP = "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>"
V3 = f'{BEGIN}{CALL}function{SEP}get_weather\n```json\n{{"city": "Paris"}}\n```{CALL_END}{END}'
V31 = f'{BEGIN}{CALL}get_weather{SEP}{{"city": "Paris"}}{CALL_END}{END}'


@pytest.mark.parametrize("name", ["deepseek_v3", "deepseek_v31"])
@pytest.mark.parametrize("text", [V3, V31], ids=["v3-layout", "v31-layout"])
def test_each_parser_reads_both_layouts(name, text):
    turn = get_parser(name).parse("Let me check." + text + " Done.")
    assert turn.calls == [ParsedCall("get_weather", {"city": "Paris"})] and not turn.errors
    assert turn.content == "Let me check.\nDone."  # text around the block, as other parsers join it


def test_cut_off_and_malformed_calls_are_errors():
    parser = get_parser("deepseek_v31")
    cut = parser.parse(f'{BEGIN}{CALL}f{SEP}{{"x": 1')
    assert not cut.calls and "cut off" in cut.errors[0].message
    no_sep = parser.parse(f'{BEGIN}{CALL}f {{"x": 1}}{CALL_END}{END}')
    assert not no_sep.calls and "tool▁sep" in no_sep.errors[0].message
    broken = parser.parse(f"{BEGIN}{CALL}f{SEP}{{x: 1}}{CALL_END}{END}")
    assert not broken.calls and "JSON" in broken.errors[0].message


def test_auto_reads_deepseek_calls():
    assert get_parser("auto").parse(V31).calls == [ParsedCall("get_weather", {"city": "Paris"})]
    assert get_parser("deepseek_v3").parse("<tool_call>{}</tool_call>").calls == []


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(["deepseek_v3", "deepseek_v31"]),
    calls=st.lists(
        st.builds(
            ParsedCall,
            st.sampled_from(["f", "get_weather"]),
            st.dictionaries(
                st.sampled_from("abc"),
                # (reasoning markers open reasoning wherever they are: left out)
                st.one_of(st.integers(), st.text(max_size=8).filter(lambda s: "think>" not in s)),
            ),
        ),
        max_size=3,
    ),
    content=st.text(alphabet="abc .,!?", max_size=20),
)
def test_parse_of_render_is_the_identity(name, calls, content):
    parser = get_parser(name)
    turn = parser.parse(parser.render(calls, content))
    assert turn.calls == calls and not turn.errors and turn.content == content.strip()


def test_a_calls_section_without_a_call_is_an_error_never_content():
    """Found by the public test set (vLLM's DeepSeek parser tests): broken markup inside the
    section, or generation cut off after the name, is one error and never content."""
    for name in ("deepseek_v3", "deepseek_v31"):
        parser = get_parser(name)
        broken = parser.parse(f'{BEGIN}function{SEP}get_weather\n```json\n{{"a": 1}}\n```{END}')
        assert (broken.calls, broken.content, len(broken.errors)) == ([], "", 1)
        cut = parser.parse(f"Let me look.{BEGIN}get_weather")
        assert (cut.calls, cut.content) == ([], "Let me look.")
        assert "cut off" in cut.errors[0].message
        assert parser.parse(f"Nothing to call.{BEGIN}{END}").errors == []
