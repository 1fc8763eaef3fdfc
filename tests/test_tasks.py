from __future__ import annotations

import json

import numpy as np
import pytest

from rlenv import GeneratedTasks, Task, TaskList
from rlenv.errors import TaskFormatError, TaskNotFoundError
from rlenv.tasks import as_task_source


def test_task_prompt_from_text_and_validation():
    task = Task(prompt="hello", answer=3)
    assert task.prompt == [{"role": "user", "content": "hello"}]
    with pytest.raises(ValueError):
        Task(prompt=[])
    with pytest.raises(ValueError):
        Task(prompt=[{"role": "bogus", "content": "x"}])
    with pytest.raises(ValueError):
        Task(prompt="x", unexpected=1)


def test_generated_tasks_are_reproducible_from_rng_and_id():
    source = GeneratedTasks(lambda rng: Task(prompt=str(rng.random()), answer=rng.randint(0, 9)))
    first = source.sample(np.random.default_rng(5))
    assert first == source.sample(np.random.default_rng(5))
    assert first != source.sample(np.random.default_rng(6))
    assert source.get(first.id) == first
    for bad in ("nope", "seed-", "seed-12x", "seed-" + "9" * 30):
        with pytest.raises(TaskNotFoundError):
            source.get(bad)


def test_generated_tasks_reject_a_generator_returning_junk():
    with pytest.raises(TypeError, match="must return a Task"):
        GeneratedTasks(lambda rng: "oops").sample(np.random.default_rng(0))


def test_task_list_ids_order_and_lookup():
    tasks = TaskList([{"prompt": "a"}, {"prompt": "b", "id": "bee"}, Task(prompt="c")])
    assert [t.id for t in tasks] == ["0", "bee", "2"]
    assert len(tasks) == 3 and tasks[1].id == "bee"
    assert tasks.get("bee").prompt[0]["content"] == "b"
    with pytest.raises(TaskNotFoundError, match="no task with id 'x'"):
        tasks.get("x")
    with pytest.raises(TaskFormatError, match="duplicate"):
        TaskList([{"prompt": "a", "id": "1"}, {"prompt": "b", "id": "1"}])
    with pytest.raises(TaskFormatError):
        TaskList([])


def test_jsonl_round_trip_and_errors_name_the_line(tmp_path):
    path = tmp_path / "tasks.jsonl"
    TaskList([{"prompt": "a", "answer": 1, "metadata": {"k": "v"}}, {"prompt": "b"}]).to_jsonl(path)
    loaded = as_task_source(str(path))
    assert [t.answer for t in loaded] == [1, None]
    assert loaded[0].metadata == {"k": "v"}

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "ok"}) + "\n\n" + "{broken\n")
    with pytest.raises(TaskFormatError, match=r"bad\.jsonl:3"):
        TaskList.from_jsonl(bad)
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text(json.dumps({"prompt": 5}) + "\n")
    with pytest.raises(TaskFormatError, match=r"wrong\.jsonl:1"):
        TaskList.from_jsonl(wrong)


def test_unbounded_source_cannot_be_iterated():
    with pytest.raises(TypeError, match="unbounded"):
        iter(GeneratedTasks(lambda rng: Task(prompt="x")))
