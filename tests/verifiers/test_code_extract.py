from __future__ import annotations

import pytest

from rlenv.verifiers.code import extract_code


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Here:\n```python\ndef f():\n    return 1\n```\nDone.", "def f():\n    return 1\n"),
        ("```py\nx = 1\n```", "x = 1\n"),
        ("```python\na = 1\n```\nbetter:\n```python\na = 2\n```", "a = 2\n"),
        ("```python\ndef f():\n    return 1\n", "def f():\n    return 1\n"),  # unclosed final fence
        ("<think>```python\nbad = 1\n```</think>```python\ngood = 1\n```", "good = 1\n"),
        ("```\nprint(1)\n```", "print(1)\n"),  # untagged fence: a fallback
        ("def f(x):\n    return x\n", "def f(x):\n    return x\n"),  # bare code: a fallback
    ],
)
def test_extract_code(text, expected):
    assert extract_code(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "no code at all",
        "<think>```python\nx = 1\n```",  # never finished thinking
        "def broken(:\n",  # bare text that is not Python
        "```python\n" + "x = 1\n" * 30_000 + "```",  # too long
        "",
    ],
)
def test_no_code(text):
    assert extract_code(text) is None


def test_fallbacks_can_be_switched_off():
    assert extract_code("```\nprint(1)\n```", fallbacks=False) is None
    assert extract_code("def f():\n    return 1\n", fallbacks=["any_fence"]) is None
    assert extract_code("```js\nx\n```\n```python\ny = 1\n```", fallbacks=False) == "y = 1\n"
