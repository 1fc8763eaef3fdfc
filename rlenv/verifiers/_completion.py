"""What every verifier does first with a completion: keep only the final text."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["final_text", "resolve_fallbacks"]


def final_text(text: object) -> str | None:
    """The text after the last ``</think>``; ``None`` for a non-string or an unclosed
    ``<think>`` (the model never finished thinking, so it never answered)."""
    if not isinstance(text, str):
        return None
    if "</think>" in text:
        return text.rsplit("</think>", 1)[1]
    if "<think>" in text:
        return None
    return text


def resolve_fallbacks(fallbacks: Sequence[str] | bool, default: tuple[str, ...]) -> tuple[str, ...]:
    """``True``: the defaults; ``False``: none; a sequence: those (each must be known)."""
    chosen = default if fallbacks is True else () if fallbacks is False else tuple(fallbacks)
    unknown = set(chosen) - set(default)
    if unknown:
        raise ValueError(f"unknown fallbacks {sorted(unknown)}; choose from {default}")
    return chosen
