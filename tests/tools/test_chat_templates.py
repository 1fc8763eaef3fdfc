"""The four properties that keep multi-turn tool training honest, on the families' real chat
templates (``templates/``, sources in ``templates/SOURCES.md``), each with its parser:

(a) what the template writes for an assistant message with ``tool_calls`` parses back to those
    calls, and ``parse(render(calls)) == calls``;
(b) the rollout engine's prompt ids equal ``apply_chat_template(..., tokenize=True)`` of the
    same conversation with the same tools;
(c) each new turn extends the previous turn's exact ids, or the engine raises
    ``TemplateNotPrefixPreserving`` naming the template and the way out;
(d) the SFT loss mask covers exactly the assistant's tokens, end-of-turn marker included.

The tokenizer of each family is built in-process (``chat_families.tokenizer_for``): no download.
A family whose parser is not registered yet is skipped, and a registered parser with no
template here fails ``test_every_parser_has_a_real_template``.
"""

from __future__ import annotations

import os

import pytest

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from chat_families import ARGUMENTS, FAMILIES, TOOLS, Family, tokenizer_for

from rlenv.rollout.chat_tokens import ChatTokens
from rlenv.rollout.transformers import (
    TemplateNotPrefixPreserving,
    end_of_turn_markers,
)
from rlenv.tools.parsers import ParsedCall, get_parser, list_parsers, parse_message
from rlenv.train.sft import chat_example

FINAL_ANSWER = "It is sunny in Paris."
# Parsers with no family template here, and why.
WITHOUT_TEMPLATE = {
    "auto": "tries the others",
    "json": "a generic format, no family template",
    "granite": "vLLM's stored Granite tool template renders no assistant turns",
    "minimax_m1": "no MiniMax-M1 template fetched yet (vLLM has tool_chat_template_minimax_m1)",
    "functiongemma": "no FunctionGemma template fetched yet",
    "gemma": "Gemma 3's ```tool_code``` format: Gemma 3's own template renders no tool calls",
}


def families(*skip_notes: str) -> list:
    params = []
    for family in FAMILIES:
        marks = []
        if family.parser not in list_parsers():
            marks.append(pytest.mark.skip(reason=f"parser {family.parser!r} not registered yet"))
        if "pending" in family.notes:
            marks.append(pytest.mark.xfail(strict=False, reason=family.notes["pending"]))
        for note in skip_notes:
            if note in family.notes:
                marks.append(pytest.mark.xfail(strict=True, reason=family.notes[note]))
        params.append(pytest.param(family, id=family.id, marks=marks))
    return params


def render(family: Family, messages: list, generation_prompt: bool = False) -> str:
    return tokenizer_for(family).apply_chat_template(
        messages, tools=TOOLS, add_generation_prompt=generation_prompt, tokenize=False
    )


def assistant_turn(family: Family, message: dict) -> tuple[str, str]:
    """What the template writes for the assistant ``message`` after the opening conversation:
    ``(text, end)`` — the turn's text and the end-of-turn marker that closes it (``""`` when
    it has none). The turn starts where the generation prompt ends (or, when the template
    renders the turn differently from its generation prompt, where the two part)."""
    opening = family.conversation()[:2]
    prompt = render(family, opening, generation_prompt=True)
    full = render(family, [*opening, message])
    if full.startswith(prompt):
        start = len(prompt)
    else:  # where they part, backed off to the end of the last whole marker
        start = full.rfind(">", 0, len(os.path.commonprefix([prompt, full])) + 1) + 1  # noqa: RUF071
    turn = full[start:]
    found = [(turn.find(m), m) for m in end_of_turn_markers(tokenizer_for(family)) if m in turn]
    if not found:
        return turn, ""
    position, marker = min(found)
    return turn[:position], marker


def expected_calls(family: Family) -> list[tuple[str, dict]]:
    return [("get_weather", ARGUMENTS)]


def read_calls(family: Family, text: str) -> list[tuple[str, dict]]:
    turn = parse_message({"role": "assistant", "content": text}, family.parser, tools=TOOLS)
    assert turn.errors == [], turn.errors
    return [(call.name, call.arguments) for call in turn.calls]


# ----------------------------------------------------------------------------- (a)


@pytest.mark.parametrize("family", families("parse"))
def test_the_templates_call_parses_back_to_the_calls(family):
    text, _ = assistant_turn(family, family.call_message())
    assert read_calls(family, text) == expected_calls(family)


@pytest.mark.parametrize("family", families("parse"))
def test_the_templates_call_with_content_parses_back(family):
    text, _ = assistant_turn(family, family.call_message(content="Let me check."))
    turn = parse_message({"role": "assistant", "content": text}, family.parser, tools=TOOLS)
    assert [(c.name, c.arguments) for c in turn.calls] == expected_calls(family)
    # some templates drop the content of a tool-call turn (Llama 3.1, Mistral); GPT-OSS's writes
    # it on the analysis channel, which is reasoning
    kept = turn.content + (turn.reasoning or "")
    assert turn.errors == [] and ("Let me check." in kept or "Let me check." not in text)


@pytest.mark.parametrize("family", families())
def test_parse_of_render_is_the_calls(family):
    parser = get_parser(family.parser)
    calls = [ParsedCall("get_weather", ARGUMENTS), ParsedCall("get_weather", {"city": "Oslo"})]
    text = parser.render(calls, content="Checking both.")
    turn = parse_message({"role": "assistant", "content": text}, family.parser, tools=TOOLS)
    assert [(c.name, c.arguments) for c in turn.calls] == [(c.name, c.arguments) for c in calls]
    assert turn.errors == [] and turn.content == "Checking both."


# Where our render's layout differs from what the family's template writes (whitespace, a
# reasoning block the template adds, ids): reported, not required — the parser reads both.
LAYOUT_DIFFERS = {
    "qwen3": "the template adds an empty <think>\\n\\n</think>\\n\\n before the last turn's call",
    "gpt_oss": "the template writes the recipient before <|channel|> and 'json' without "
    "<|constrain|>, and ends the call with <|call|>, the stop token (ours writes it)",
    "glm45": "the template adds \\n<think></think>\\n before the call",
    "llama3_2_pythonic": "vLLM's template writes string values unquoted; ours quotes them",
    "mistral_small_3_1": "Mistral Small 3.1's template writes the pre-v11 JSON list with ids; "
    "ours writes v11's [TOOL_CALLS]name[ARGS]{...}",
    "internlm2": "the template writes 'arguments', ours 'parameters'",
    "kimi_k2_thinking": "the template adds <think></think> before the calls section",
    "minimax_m2": "the template writes the reasoning, a blank line and a trailing newline",
    "phi4_mini": "vLLM's template writes the JSON without the functools[...] marker",
}


@pytest.mark.parametrize("family", families("parse"))
def test_render_writes_the_templates_layout(family):
    if family.template in LAYOUT_DIFFERS:
        pytest.xfail(LAYOUT_DIFFERS[family.template])
    text, _ = assistant_turn(family, family.call_message())
    ours = get_parser(family.parser).render([ParsedCall("get_weather", ARGUMENTS)])
    assert ours == text


# ----------------------------------------------------------------------------- (b)


@pytest.mark.parametrize("family", families())
def test_prompt_ids_equal_apply_chat_template(family):
    tokenizer = tokenizer_for(family)
    tokens = ChatTokens(tokenizer)
    for conversation in (family.conversation()[:2], family.conversation()):
        expected = tokenizer.apply_chat_template(
            conversation, tools=TOOLS, add_generation_prompt=True, tokenize=True, return_dict=False
        )
        assert tokens.prompt_ids(conversation, TOOLS) == expected


# ----------------------------------------------------------------------------- (c)


@pytest.mark.parametrize("family", families("continue", "turn"))
def test_the_next_turn_extends_the_exact_ids(family):
    """The model's turn (its own ids, stop token included), then the tool's result: the new
    prompt starts with those exact ids, and is the template's rendering of the conversation."""
    tokenizer = tokenizer_for(family)
    tokens = ChatTokens(tokenizer)
    conversation = family.conversation()
    prompt = tokens.prompt_ids(conversation[:2], TOOLS)
    text, end = assistant_turn(family, conversation[2])
    generated = tokenizer(text + end, add_special_tokens=False)["input_ids"]
    prefix = prompt + generated
    extended = tokens.continued_prompt_ids(conversation, TOOLS, prefix)
    assert extended[: len(prefix)] == prefix
    assert tokenizer.decode(extended) == render(family, conversation, generation_prompt=True)
    assert extended == tokenizer.apply_chat_template(
        conversation, tools=TOOLS, add_generation_prompt=True, tokenize=True, return_dict=False
    )


@pytest.mark.parametrize(
    "family", [f for f in FAMILIES if "continue" in f.notes], ids=lambda f: f.id
)
def test_a_template_that_rewrites_earlier_turns_is_refused_by_name(family):
    tokenizer = tokenizer_for(family)
    conversation = family.conversation()
    with pytest.raises(TemplateNotPrefixPreserving) as raised:
        ChatTokens(tokenizer).continued_prompt_ids(conversation, TOOLS, [1, 2, 3])
    message = str(raised.value)
    assert f"templates/{family.template}.jinja" in message  # which template
    assert "prefix-preserving template" in message and "max_turns=1" in message  # the way out


def test_qwen3_refusal_shows_the_dropped_reasoning():
    """Qwen3's template writes an empty <think> block in the last assistant turn and drops it
    once a tool result follows: the message shows that difference."""
    (family,) = [f for f in FAMILIES if f.template == "qwen3"]
    with pytest.raises(TemplateNotPrefixPreserving, match="think"):
        ChatTokens(tokenizer_for(family)).continuation_text(
            family.conversation(), TOOLS, stopped=True
        )


# ----------------------------------------------------------------------------- (d)


@pytest.mark.parametrize("family", families("continue", "turn", "parse"))
def test_the_sft_mask_covers_exactly_the_assistant_tokens(family):
    tokenizer = tokenizer_for(family)
    answer = {"role": "assistant", "content": FINAL_ANSWER}
    if family.reasoning is not None:
        answer["reasoning_content"] = family.reasoning
    messages = [*family.conversation(), answer]
    example = chat_example(tokenizer, messages, TOOLS)
    spans, current = [], []
    for token, masked in zip(example.token_ids, example.mask, strict=True):
        if masked:
            current.append(token)
        elif current:
            spans.append(current)
            current = []
    if current:
        spans.append(current)
    stops = ChatTokens(tokenizer).stop_ids
    assert len(spans) == 2  # the call turn and the answer, nothing else
    for span in spans:
        assert span[-1] in stops  # the end-of-turn marker is a target
    call_text, answer_text = (tokenizer.decode(span[:-1]) for span in spans)
    assert read_calls(family, call_text) == expected_calls(family)
    assert answer_text.strip().endswith(FINAL_ANSWER)
    # the masked-out tokens are the template's: prompt, tool result, generation prompts
    outside = tokenizer.decode(
        [t for t, m in zip(example.token_ids, example.mask, strict=True) if not m]
    )
    assert "sunny" in outside and FINAL_ANSWER not in outside
    rendered = render(family, messages)  # the template's text, up to its last end marker
    decoded = tokenizer.decode(example.token_ids)
    if not rendered.startswith(decoded):  # the EOS added to a last turn the template leaves open
        decoded = decoded.removesuffix(tokenizer.eos_token)
    assert rendered.startswith(decoded) and not rendered[len(decoded) :].strip()


# ----------------------------------------------------------------------------- coverage


def test_every_parser_has_a_real_template():
    covered = {family.parser for family in FAMILIES}
    built_in = {  # other tests register parsers of their own
        name
        for name in list_parsers()
        if type(get_parser(name)).__module__.startswith("rlenv.tools.parsers")
    }
    missing = built_in - covered - set(WITHOUT_TEMPLATE)
    assert not missing, f"parsers without a real chat template in tests/tools/templates: {missing}"
