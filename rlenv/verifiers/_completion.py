"""What every verifier does first with a completion: keep only the final text."""

from __future__ import annotations

from collections.abc import Sequence

from rlenv.reasoning import final_text

__all__ = ["final_text", "resolve_fallbacks"]


def resolve_fallbacks(fallbacks: Sequence[str] | bool, default: tuple[str, ...]) -> tuple[str, ...]:
    """``True``: the defaults; ``False``: none; a sequence: those (each must be known)."""
    if fallbacks is True:
        return default
    if fallbacks is False:
        return ()
    chosen = tuple(fallbacks)
    unknown = set(chosen) - set(default)
    if unknown:
        raise ValueError(f"unknown fallbacks {sorted(unknown)}; choose from {default}")
    return chosen
