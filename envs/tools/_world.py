"""What the bundled tool worlds share: people's names, how amounts in cents read, how a call is
keyed for counting, and replaying a gold plan to get the expected database."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from rlenv.tools import Toolbox

FIRST_NAMES = ["Ana", "Ben", "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines",
               "Jonas", "Kemi", "Liam", "Maya", "Noor", "Omar", "Priya", "Quinn", "Rosa", "Sven",
               "Tara"]  # fmt: skip
LAST_NAMES = ["Silva", "Okafor", "Novak", "Larsen", "Haddad", "Moreau", "Tanaka", "Kowalski",
              "Fischer", "Costa", "Reyes", "Nakamura", "Ibrahim", "Walsh", "Berg"]  # fmt: skip


def usd(cents: int) -> str:
    """Cents as dollars for people: ``123456`` is ``$1,234.56``."""
    return f"${cents // 100:,}.{cents % 100:02d}"


def call_key(name: str, arguments: Any, *, ignore: tuple[str, ...] = ()) -> tuple:
    """A hashable form of a call, whole-number floats read as ints (100.0 is 100), the
    arguments in ``ignore`` left out."""

    def plain(value: Any) -> str:
        whole = isinstance(value, float) and value.is_integer()
        return repr(int(value) if whole else value)

    items = arguments.items() if isinstance(arguments, dict) else ()
    return (name, tuple(sorted((k, plain(v)) for k, v in items if k not in ignore)))


def replay(toolbox: Toolbox, initial: dict, calls: Iterable[Mapping[str, Any]]) -> dict:
    """The database ``calls`` (``{"name", "arguments"}``) leave, run with the real tools on a
    copy of ``initial``. A gold call that fails is a bug in the task: it raises."""
    state = copy.deepcopy(initial)
    for call in calls:
        outcome = toolbox.run(call["name"], call["arguments"], hidden={"state": state})
        if not outcome.ok:
            raise RuntimeError(f"a gold call failed: {dict(call)}: {outcome.error}")
    return state
