"""Pulling the code out of a completion."""

from __future__ import annotations

import re
from collections.abc import Sequence

from rlenv.verifiers._completion import final_text, resolve_fallbacks

__all__ = ["DEFAULT_CODE_FALLBACKS", "extract_code"]

DEFAULT_CODE_FALLBACKS: tuple[str, ...] = ("any_fence", "bare_code")
"""After the last ```python block: the last fenced block of any language (``"any_fence"``),
then the whole text when it parses as Python (``"bare_code"``)."""

_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_PYTHON = {"python", "py", "python3", "py3"}
_MAX_CODE_CHARS = 100_000


def extract_code(text: str, *, fallbacks: Sequence[str] | bool = True) -> str | None:
    """The code a completion commits to, or ``None``.

    Only the text after the last ``</think>`` counts (an unclosed ``<think>``: no code). The last
    fenced block tagged ``python`` (or ``py``) wins; an unclosed final fence runs to the end of
    the text. ``fallbacks`` (``True`` for :data:`DEFAULT_CODE_FALLBACKS`, ``False`` for none).
    Code over 100,000 characters is refused.
    """
    text = final_text(text)
    if text is None:
        return None
    chosen = resolve_fallbacks(fallbacks, DEFAULT_CODE_FALLBACKS)
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(text)]
    python_blocks = [body for lang, body in blocks if lang in _PYTHON]
    code: str | None = None
    if python_blocks:
        code = python_blocks[-1]
    elif "any_fence" in chosen and blocks:
        code = blocks[-1][1]
    elif "bare_code" in chosen and not blocks and _parses(text):
        code = text
    if code is None or len(code) > _MAX_CODE_CHARS:
        return None
    return code.strip("\n") + "\n"


def _parses(text: str) -> bool:
    if len(text) > _MAX_CODE_CHARS or not re.search(r"^(def |class |import |from )", text, re.M):
        return False
    try:
        compile(text, "<completion>", "exec", dont_inherit=True, flags=0x400)  # PyCF_ONLY_AST
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True
