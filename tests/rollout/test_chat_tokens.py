"""ChatTokens: the tokenizer half of TransformersPolicy, for trainers that generate elsewhere."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from rlenv.rollout.chat_tokens import ChatTokens
from rlenv.rollout.transformers import (
    TemplateNotPrefixPreserving,
    TransformersPolicy,
)
from rlenv.testing import tiny_chat_model

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Say a or b."},
    {"role": "assistant", "content": "aaaa"},
    {"role": "user", "content": "Say more."},
]


@pytest.fixture(scope="module")
def model_and_tokenizer():
    return tiny_chat_model()


@pytest.mark.parametrize("stopped", [True, False])
def test_chat_tokens_agree_with_the_policy(model_and_tokenizer, stopped):
    model, tokenizer = model_and_tokenizer
    policy = TransformersPolicy(model, tokenizer, device="cpu", cast_bf16=False)
    tokens = ChatTokens(tokenizer)
    assert tokens.stop_ids == policy.stop_ids
    opening = CONVERSATION[:2]
    assert tokens.prompt_ids(opening) == policy.prompt_ids(opening, [])
    assert tokenizer(tokens.prompt_text(opening), add_special_tokens=False)["input_ids"] == (
        policy.prompt_ids(opening, [])
    )
    generated = tokenizer("aaaa", add_special_tokens=False)["input_ids"]
    if stopped:
        generated = [*generated, tokenizer.eos_token_id]
    prefix = policy.prompt_ids(opening, []) + generated
    expected = policy.continued_prompt_ids(CONVERSATION, [], prefix)
    assert tokens.continued_prompt_ids(CONVERSATION, [], prefix) == expected
    text = tokens.continuation_text(CONVERSATION, [], stopped=stopped)
    assert prefix + tokenizer(text, add_special_tokens=False)["input_ids"] == expected
    assert text.startswith("\n<|im_start|>user" if stopped else "<|im_end|>")


def test_a_template_that_rewrites_history_is_refused(model_and_tokenizer):
    _, tokenizer = model_and_tokenizer
    tokens = ChatTokens(tokenizer)
    original = tokenizer.chat_template
    # renders only the last two messages: earlier turns change once more follow
    tokenizer.chat_template = (
        "{% for message in messages[-2:] %}<|im_start|>{{ message['role'] }}\n"
        "{{ message['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    try:
        with pytest.raises(TemplateNotPrefixPreserving):
            tokens.continuation_text(CONVERSATION, [], stopped=True)
        with pytest.raises(TemplateNotPrefixPreserving):
            tokens.continued_prompt_ids(CONVERSATION, [], [1, 2])
    finally:
        tokenizer.chat_template = original
