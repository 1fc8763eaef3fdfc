"""What the bundled tool worlds share: people's names and how amounts in cents read."""

from __future__ import annotations

FIRST_NAMES = ["Ana", "Ben", "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines",
               "Jonas", "Kemi", "Liam", "Maya", "Noor", "Omar", "Priya", "Quinn", "Rosa", "Sven",
               "Tara"]  # fmt: skip
LAST_NAMES = ["Silva", "Okafor", "Novak", "Larsen", "Haddad", "Moreau", "Tanaka", "Kowalski",
              "Fischer", "Costa", "Reyes", "Nakamura", "Ibrahim", "Walsh", "Berg"]  # fmt: skip


def usd(cents: int) -> str:
    """Cents as dollars for people: ``123456`` is ``$1,234.56``."""
    return f"${cents // 100:,}.{cents % 100:02d}"
