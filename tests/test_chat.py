from __future__ import annotations

import pytest
from pydantic import ValidationError

from rlenv import chat


def test_valid_messages_validate_to_the_same_dicts():
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "content": "42", "tool_call_id": "c1"},
        {"role": "assistant", "content": "done", "reasoning_content": "kept"},
    ]
    assert chat.validate_messages(messages) == messages


@pytest.mark.parametrize(
    "bad",
    [
        {"role": "robot", "content": "x"},
        {"role": "user"},
        {"role": "user", "content": 3},
        {"content": "no role"},
        {"role": "assistant", "tool_calls": [{"function": {"arguments": "{}"}}]},
        "just a string",
    ],
)
def test_invalid_messages_raise_naming_the_problem(bad):
    with pytest.raises(ValidationError):
        chat.validate_message(bad)
    assert not chat.is_valid_message(bad)


def test_copy_messages_is_deep_for_nested_data():
    original = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"function": {"name": "f", "arguments": {"a": [1]}}}],
        }
    ]
    copied = chat.copy_messages(original)
    copied[0]["tool_calls"][0]["function"]["arguments"]["a"].append(2)
    copied[0]["content"] = "changed"
    assert original[0]["tool_calls"][0]["function"]["arguments"]["a"] == [1]
    assert original[0]["content"] is None


def test_helpers_and_rendering():
    convo = [chat.system("s"), chat.user("u"), chat.assistant("a"), chat.tool("t", "c1", "f")]
    assert [m["role"] for m in convo] == ["system", "user", "assistant", "tool"]
    text = chat.render_messages(convo)
    assert "[tool] (call c1)" in text and "[assistant]\na" in text
    assert "more chars" in chat.render_messages([chat.user("x" * 100)], width=10)
    assert (
        chat.message_text(
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url"}]}
        )
        == "a"
    )
