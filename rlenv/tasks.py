"""Tasks and where they come from.

A :class:`Task` is one problem: the opening messages, a reference answer for the verifier, and
metadata. A :class:`TaskSource` hands tasks to an environment:

- :class:`GeneratedTasks` builds tasks procedurally from a seeded ``random.Random``; the task id
  names that generator seed (drawn by ``reset``, not ``reset``'s own seed), so any task can be
  rebuilt from its id: ``reset(options={"task_id": info["task_id"]})``.
- :class:`TaskList` holds a fixed dataset in memory, iterable in order for evaluation;
  :meth:`TaskList.from_jsonl` reads one task per line.
- :func:`split_tasks` keeps one side of a content-based train/test split of any source, so a
  held-out problem is never trained on, whatever its seed or id (``TextEnv(split="test")``).

Sources are stateless: the environment owns the random number generator, so the same
``reset(seed=s)`` always picks the same task.
"""

from __future__ import annotations

import hashlib
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

__all__ = [
    "GeneratedTasks",
    "SplitTasks",
    "Task",
    "TaskList",
    "TaskSource",
    "as_task_source",
    "split_of",
    "split_tasks",
]


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
    ``make_task``; ``get(id)`` rebuilds the same task. That seed is drawn from the environment's
    generator by ``reset``: it is not the seed passed to ``reset``, so replay a task by the id
    ``reset`` reported (``info["task_id"]``), not by ``"seed-<reset seed>"``. ``make_task``
    must use only that ``rng`` for randomness (never the global ``random`` module), or tasks
    stop being reproducible.

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
                f"{self.prefix!r} followed by the task generator's seed, e.g. {self.prefix}42 "
                "(not reset's seed: take the id from info['task_id'] to replay a task)"
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


# ----------------------------------------------------------------------------- splits

SPLITS = ("train", "test")
DEFAULT_TEST_FRACTION = 0.2
_MAX_DRAWS = 10_000


def split_of(task: Task, test_fraction: float = DEFAULT_TEST_FRACTION) -> str:
    """``"test"`` or ``"train"``: which side of the content split ``task`` falls on.

    The split hashes the task's content, its prompt and reference answer (SHA-256 of canonical
    JSON), not its id or seed: two seeds that pose the same problem land on the same side, so a
    held-out problem is never trained on. The answer counts because some environments pose one
    prompt with different hidden answers (a number to guess). The assignment is stable across
    runs, machines and Python versions.
    """
    check_test_fraction(test_fraction)
    prompt = task.model_dump(mode="json", include={"prompt"})["prompt"]
    content = json.dumps({"prompt": prompt, "answer": task.answer}, sort_keys=True, default=repr)
    digest = hashlib.sha256(content.encode("utf-8")).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else "train"


def check_test_fraction(test_fraction: float) -> None:
    if not isinstance(test_fraction, (int, float)) or not 0.0 < test_fraction < 1.0:
        raise ValueError(
            f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction!r}"
        )


class SplitTasks(TaskSource):
    """The tasks of an unbounded ``source`` (e.g. :class:`GeneratedTasks`) on one side of the
    content split (:func:`split_of`).

    ``sample`` draws from ``source`` until a task falls on ``split`` (deterministic in the RNG);
    ``get`` refuses an id whose task is on the other side.
    """

    def __init__(
        self, source: TaskSource, split: str, test_fraction: float = DEFAULT_TEST_FRACTION
    ) -> None:
        check_split(split)
        check_test_fraction(test_fraction)
        self.source, self.split, self.test_fraction = source, split, test_fraction

    def sample(self, rng: np.random.Generator) -> Task:
        for _ in range(_MAX_DRAWS):
            task = self.source.sample(rng)
            if split_of(task, self.test_fraction) == self.split:
                return task
        raise TaskNotFoundError(
            f"no task of the {self.split!r} split in {_MAX_DRAWS:,} draws from {self.source!r}: "
            "the source poses too few distinct problems for this test_fraction"
        )

    def get(self, task_id: str) -> Task:
        task = self.source.get(task_id)
        if split_of(task, self.test_fraction) != self.split:
            other = "test" if self.split == "train" else "train"
            raise TaskNotFoundError(
                f"task {task_id!r} is in the {other!r} split, not {self.split!r}"
            )
        return task

    def __repr__(self) -> str:
        return f"SplitTasks({self.source!r}, {self.split!r}, test_fraction={self.test_fraction})"


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def split_tasks(
    source: TaskSource, split: str, test_fraction: float = DEFAULT_TEST_FRACTION
) -> TaskSource:
    """``source`` restricted to one side of the content split: a :class:`TaskList` of the kept
    tasks for a finite list (order kept; an empty side is an error), else a :class:`SplitTasks`."""
    check_split(split)
    check_test_fraction(test_fraction)
    if isinstance(source, TaskList):
        kept = [task for task in source if split_of(task, test_fraction) == split]
        if not kept:
            raise TaskFormatError(
                f"none of the {len(source)} tasks falls in the {split!r} split "
                f"(test_fraction={test_fraction})"
            )
        return TaskList(kept)
    return SplitTasks(source, split, test_fraction)
