from __future__ import annotations

from rlenv.spaces import HOSTILE_TEXTS, ActionSpace, ConversationSpace


def test_action_space_contains_text_and_assistant_dicts_only():
    space = ActionSpace(max_length=10)
    assert "short" in space
    assert "x" * 11 not in space
    assert {"role": "assistant", "content": "hi"} in space
    assert {"role": "user", "content": "hi"} not in space
    assert 42 not in space and b"bytes" not in space and None not in space


def test_action_space_samples_are_seeded_and_within_the_space():
    a, b = ActionSpace(seed=3), ActionSpace(seed=3)
    samples = [a.sample() for _ in range(50)]
    assert samples == [b.sample() for _ in range(50)]
    assert all(sample in a for sample in samples)
    assert any(any(h and h in s for h in HOSTILE_TEXTS) for s in samples)


def test_conversation_space_contains_and_samples():
    space = ConversationSpace(seed=1)
    for _ in range(20):
        assert space.sample() in space
    assert [{"role": "user", "content": "x"}] in space
    assert [{"role": "user", "content": 1}] not in space
    assert "not a list" not in space
    assert (
        ConversationSpace(max_messages=1).contains([{"role": "user", "content": "x"}] * 2) is False
    )
