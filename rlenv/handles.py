"""Task handles: one task of one environment, named so any process can pose it again.

A :class:`TaskHandle` is the env id, its constructor kwargs and a task id: enough to
``rlenv.make(env_id, **env_kwargs)`` and ``reset(options={"task_id": task_id})`` to the same task
on another worker, in another process, on another machine. It travels as a *tag*, one JSON
string (:meth:`TaskHandle.to_tag`, read back by :meth:`TaskHandle.from_tag`), because a string
survives every format a trainer's data passes through unchanged: JSON lines, a parquet string
column (a struct column would give rows with fewer kwargs ``None`` for the others), a chat
message's extra key, an HTTP body. The TRL, verl and OpenRLHF adapters all write and read this
one format.

:func:`task_seeds` is the one rule behind "the first ``n`` tasks from seed ``s``": task ``i`` is
the task ``env.reset(seed=s + i)`` poses. ``rlenv eval``, the trainers, ``rlenv collect`` and
every adapter's export use it, so the same seed means the same tasks everywhere.

>>> handle = TaskHandle(env_id="rlenv/Arithmetic-v0", env_kwargs={"difficulty": 1},
...                     task_id="seed-7")
>>> handle.to_tag()
'{"env_id": "rlenv/Arithmetic-v0", "env_kwargs": {"difficulty": 1}, "task_id": "seed-7"}'
>>> TaskHandle.from_tag(handle.to_tag()) == handle
True
>>> list(task_seeds(3, seed=10))
[10, 11, 12]
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError, field_validator

from rlenv.errors import RLEnvError

__all__ = ["TaskHandle", "TaskTagError", "task_seeds"]

_HOW_TO_BUILD = (
    "build the data with rlenv's exporters (rlenv.adapters.trl.build_dataset, "
    "rlenv.adapters.verl.export_parquet, rlenv.adapters.openrlhf.export_jsonl), or write "
    "TaskHandle(env_id=..., env_kwargs=..., task_id=...).to_tag() yourself"
)


class TaskTagError(RLEnvError, ValueError):
    """A value that should hold a task tag does not. A data bug, not a model's: the message
    names the field, says what was wrong and how to build the data."""


class TaskHandle(BaseModel):
    """One task of one environment, portable across processes (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    env_id: StrictStr = Field(min_length=1, description="A registered id, 'rlenv/Arithmetic-v0'.")
    env_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Constructor arguments, as for rlenv.make; JSON data, so the tag keeps them.",
    )
    task_id: StrictStr = Field(description="What reset(options={'task_id': ...}) poses again.")

    @field_validator("env_kwargs")
    @classmethod
    def _json_kwargs(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"env_kwargs must be JSON data (strings, numbers, booleans, lists, objects) to "
                f"survive a tag: {error}"
            ) from None
        return value

    def to_tag(self) -> str:
        """The handle as one JSON string with sorted keys (the same handle, the same string)."""
        return json.dumps(
            {"env_id": self.env_id, "env_kwargs": self.env_kwargs, "task_id": self.task_id},
            sort_keys=True,
        )

    @classmethod
    def from_tag(cls, tag: Any, *, field: str = "tag") -> TaskHandle:
        """The handle a tag names. ``tag`` is a :meth:`to_tag` string (``str`` or UTF-8
        ``bytes``), or its decoded mapping, or a handle.

        Raises :class:`TaskTagError`, naming ``field`` (the column or key the value came
        from, e.g. ``"reward_model.ground_truth"``), for anything else.
        """
        if isinstance(tag, TaskHandle):
            return tag
        data = tag
        if isinstance(tag, (bytes, bytearray)):
            try:
                data = bytes(tag).decode("utf-8")
            except UnicodeDecodeError:
                raise _not_a_tag(field, tag, "bytes that are not UTF-8") from None
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError:
                raise _not_a_tag(field, tag, "not JSON") from None
        if not isinstance(data, Mapping):
            raise _not_a_tag(field, tag, f"a {type(data).__name__}, not a JSON object")
        data = dict(data)
        if isinstance(data.get("task_id"), int) and not isinstance(data["task_id"], bool):
            data["task_id"] = str(data["task_id"])  # tags written before ids were strings
        if data.get("env_kwargs") is None and "env_kwargs" in data:
            data["env_kwargs"] = {}
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in e['loc']) or 'tag'}: {e['msg']}"
                for e in error.errors()
            )
            raise _not_a_tag(field, tag, problems) from None


def _not_a_tag(field: str, tag: Any, problem: str) -> TaskTagError:
    return TaskTagError(
        f'{field} is not an rlenv task tag (a JSON string {{"env_id", "env_kwargs", '
        f'"task_id"}}): {problem}; got {tag!r:.200}. {_HOW_TO_BUILD}'
    )


def task_seeds(n_tasks: int, seed: int = 0) -> range:
    """The reset seeds of tasks ``0 .. n_tasks - 1``: task ``i`` is ``reset(seed=seed + i)``.

    The one place this rule is written: :func:`rlenv.rollout.episodes` (``rlenv eval``,
    ``rlenv collect``, the trainers) and :func:`rlenv.pool.pose_tasks` (every adapter's export)
    both draw their tasks from it.
    """
    if isinstance(n_tasks, bool) or not isinstance(n_tasks, int) or n_tasks < 0:
        raise ValueError(f"n_tasks must be a non-negative int, got {n_tasks!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int (a Gymnasium seed), got {seed!r}")
    return range(seed, seed + n_tasks)
