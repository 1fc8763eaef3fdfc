"""Tasks and where they come from.

A :class:`Task` is one problem: the opening messages, a reference answer for the verifier, and
metadata. A :class:`TaskSource` hands tasks to an environment:

- :class:`GeneratedTasks` builds tasks procedurally from a seeded ``random.Random``; the task id
  is the seed, so any task can be rebuilt from its id.
- :class:`TaskList` holds a fixed dataset in memory, iterable in order for evaluation;
  :meth:`TaskList.from_jsonl` reads one task per line.

Sources are stateless: the environment owns the random number generator, so the same
``reset(seed=s)`` always picks the same task.
"""

from __future__ import annotations

import json
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rlenv.chat import Message
from rlenv.errors import TaskFormatError, TaskNotFoundError

__all__ = ["GeneratedTasks", "Task", "TaskList", "TaskSource", "as_task_source"]


class Task(BaseModel):
    """One problem an environment poses.

    ``prompt`` may be given as a plain string, which becomes a single user message.
    """

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(
        default=None, description="Unique within its source; sources assign one if missing."
    )
    prompt: list[Message] = Field(description="The opening messages shown to the model.")
    answer: Any = Field(
        default=None, description="The reference answer the verifier compares against."
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Anything else: difficulty, source, test cases..."
    )

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt_from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [{"role": "user", "content": value}]
        return value

    @field_validator("prompt")
    @classmethod
    def _prompt_not_empty(cls, value: list[Message]) -> list[Message]:
        if not value:
            raise ValueError("a task needs at least one prompt message")
        return value


class TaskSource(ABC):
    """Where an environment's tasks come from.

    Subclasses implement :meth:`sample` (pick a task with the env's RNG) and :meth:`get`
    (rebuild a task from its id). Finite sources also support ``len()`` and ordered iteration.
    """

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> Task:
        """Pick a task using ``rng`` (the environment's ``np_random``). Deterministic in ``rng``."""

    @abstractmethod
    def get(self, task_id: str) -> Task:
        """The task with this id; raises :class:`~rlenv.errors.TaskNotFoundError`."""

    def __iter__(self) -> Iterator[Task]:
        raise TypeError(
            f"{type(self).__name__} is unbounded and cannot be iterated; "
            "use TaskList for a fixed evaluation set"
        )


class GeneratedTasks(TaskSource):
    """Tasks built on demand by ``make_task(rng) -> Task`` from a seeded ``random.Random``.

    Each task's id is ``f"{prefix}{seed}"``, where ``seed`` seeded the ``random.Random`` given to
    ``make_task``; ``get(id)`` rebuilds the same task. ``make_task`` must use only that ``rng``
    for randomness (never the global ``random`` module), or tasks stop being reproducible.

    >>> source = GeneratedTasks(lambda rng: Task(prompt=f"Say {rng.randint(0, 9)}."))
    >>> source.get("seed-7") == source.get("seed-7")
    True
    """

    def __init__(self, make_task: Callable[[random.Random], Task], *, prefix: str = "seed-"):
        self.make_task = make_task
        self.prefix = prefix

    def sample(self, rng: np.random.Generator) -> Task:
        return self.build(int(rng.integers(0, 2**63 - 1)))

    def build(self, seed: int) -> Task:
        """The task for a given generator seed."""
        task = self.make_task(random.Random(seed))
        if not isinstance(task, Task):
            raise TypeError(
                f"make_task must return a Task, got {type(task).__name__}: {task!r:.200}"
            )
        task.id = f"{self.prefix}{seed}"
        return task

    def get(self, task_id: str) -> Task:
        digits = task_id[len(self.prefix) :] if task_id.startswith(self.prefix) else ""
        if not digits.isdigit() or len(digits) > 19:
            raise TaskNotFoundError(
                f"task id {task_id!r} does not name a generated task; ids look like "
                f"{self.prefix!r} followed by the seed, e.g. {self.prefix}42"
            )
        return self.build(int(digits))

    def __repr__(self) -> str:
        name = getattr(self.make_task, "__qualname__", repr(self.make_task))
        return f"GeneratedTasks({name})"


class TaskList(TaskSource, Sequence[Task]):
    """A fixed list of tasks: sampled uniformly, looked up by id, iterated in order.

    Tasks without an id get their index as id (``"0"``, ``"1"``...). Ids must be unique.
    """

    def __init__(self, tasks: Iterable[Task | dict[str, Any]]):
        self._tasks: list[Task] = []
        self._by_id: dict[str, Task] = {}
        for index, item in enumerate(tasks):
            try:
                task = item if isinstance(item, Task) else Task.model_validate(item)
            except ValidationError as error:
                raise TaskFormatError(f"task #{index} is malformed: {error}") from None
            if task.id is None:
                task = task.model_copy(update={"id": str(index)})
            if task.id in self._by_id:
                raise TaskFormatError(f"duplicate task id {task.id!r} (task #{index})")
            self._tasks.append(task)
            self._by_id[task.id] = task
        if not self._tasks:
            raise TaskFormatError("a TaskList needs at least one task")

    @classmethod
    def from_jsonl(cls, path: str | Path) -> TaskList:
        """Read tasks from a JSONL file: one JSON object per line with the fields of :class:`Task`.

        Blank lines are skipped. Errors name the file and line.
        """
        path = Path(path)
        tasks = []
        with path.open(encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    tasks.append(Task.model_validate(json.loads(line)))
                except (json.JSONDecodeError, ValidationError) as error:
                    raise TaskFormatError(f"{path}:{line_number}: {error}") from None
        if not tasks:
            raise TaskFormatError(f"{path} holds no tasks")
        return cls(tasks)

    def to_jsonl(self, path: str | Path) -> None:
        """Write the tasks as JSONL, readable by :meth:`from_jsonl`."""
        with Path(path).open("w", encoding="utf-8") as handle:
            for task in self._tasks:
                handle.write(task.model_dump_json() + "\n")

    def sample(self, rng: np.random.Generator) -> Task:
        return self._tasks[int(rng.integers(0, len(self._tasks)))]

    def get(self, task_id: str) -> Task:
        try:
            return self._by_id[task_id]
        except KeyError:
            raise TaskNotFoundError(
                f"no task with id {task_id!r} among {len(self._tasks)} tasks"
            ) from None

    def __len__(self) -> int:
        return len(self._tasks)

    def __getitem__(self, index):  # type: ignore[override]
        return self._tasks[index]

    def __iter__(self) -> Iterator[Task]:
        return iter(self._tasks)

    def __repr__(self) -> str:
        return f"TaskList({len(self._tasks)} tasks)"


def as_task_source(tasks: TaskSource | Sequence[Task | dict[str, Any]] | str | Path) -> TaskSource:
    """Accept a task source, a sequence of tasks (or task dicts), or a path to a JSONL file."""
    if isinstance(tasks, TaskSource):
        return tasks
    if isinstance(tasks, (str, Path)):
        return TaskList.from_jsonl(tasks)
    if isinstance(tasks, Iterable):
        return TaskList(tasks)
    raise TypeError(
        "tasks must be a TaskSource, a list of Task objects or dicts, or a path to a JSONL file; "
        f"got {type(tasks).__name__}"
    )
