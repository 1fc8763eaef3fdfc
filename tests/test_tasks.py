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


# ----------------------------------------------------------------------------- content splits


def _prompts(env, seeds) -> list[str]:
    from rlenv.chat import message_text

    texts = []
    for seed in seeds:
        observation, _ = env.reset(seed=seed)
        texts.append(message_text(observation[-1]))
    return texts


def test_train_and_test_splits_never_share_a_problem():
    import rlenv

    kwargs = {"difficulty": 1, "prompt_template": "{expression}"}  # only ~200 distinct problems
    train = rlenv.make("rlenv/Arithmetic-v0", split="train", **kwargs)
    test = rlenv.make("rlenv/Arithmetic-v0", split="test", **kwargs)
    everything = rlenv.make("rlenv/Arithmetic-v0", **kwargs)
    train_prompts = set(_prompts(train, range(3000)))
    test_prompts = set(_prompts(test, range(3000)))
    assert train_prompts and test_prompts and not train_prompts & test_prompts
    assert train_prompts | test_prompts == set(_prompts(everything, range(3000)))
    # unsplit, seed-disjoint "held-out" sets overlap almost entirely on such an env
    assert set(_prompts(everything, range(100))) & set(
        _prompts(everything, range(10**6, 10**6 + 600))
    )
    # the same seed poses the same task
    assert _prompts(test, [4, 5, 4]) == _prompts(
        rlenv.make("rlenv/Arithmetic-v0", split="test", **kwargs), [4, 5, 4]
    )


def test_split_follows_content_not_ids_and_keeps_about_test_fraction():
    from rlenv.tasks import split_of

    source = GeneratedTasks(lambda rng: Task(prompt=f"word {rng.randint(0, 10**9)}"))
    tasks = [source.build(seed) for seed in range(4000)]
    share = sum(split_of(task) == "test" for task in tasks) / len(tasks)
    assert 0.17 < share < 0.23
    assert 0.45 < sum(split_of(task, 0.5) == "test" for task in tasks) / len(tasks) < 0.55
    twin = Task(id="another-id", prompt=tasks[0].prompt)  # same problem, other id
    assert split_of(twin) == split_of(tasks[0])
    # one prompt, different hidden answers (a number to guess): the answer counts
    sides = {split_of(Task(prompt="Guess my number.", answer=n)) for n in range(100)}
    assert sides == {"train", "test"}


def test_split_sources_sample_get_and_refuse_the_other_side():
    from rlenv.tasks import SplitTasks, split_of, split_tasks

    source = GeneratedTasks(lambda rng: Task(prompt=f"word {rng.randint(0, 10**9)}"))
    test = split_tasks(source, "test")
    assert isinstance(test, SplitTasks)
    drawn = [test.sample(np.random.default_rng(seed)) for seed in range(50)]
    assert all(split_of(task) == "test" for task in drawn)
    assert drawn[3] == test.sample(np.random.default_rng(3))  # deterministic in the RNG
    assert test.get(drawn[0].id) == drawn[0]
    train_task = next(t for t in (source.build(s) for s in range(100)) if split_of(t) == "train")
    with pytest.raises(TaskNotFoundError, match="'train' split"):
        test.get(train_task.id)

    listed = TaskList([Task(prompt=f"q{n}", answer=n) for n in range(200)])
    train = split_tasks(listed, "train")
    assert isinstance(train, TaskList)
    kept = [task.answer for task in train]
    assert kept == sorted(kept) and 140 < len(kept) < 190  # order kept, ~80%
    assert len(split_tasks(listed, "test")) == 200 - len(kept)
    one = TaskList([train[0]])
    with pytest.raises(TaskFormatError, match="'test' split"):
        split_tasks(one, "test")

    constant = GeneratedTasks(lambda rng: Task(prompt="always the same", answer=1))
    other = "test" if split_of(constant.build(0)) == "train" else "train"
    with pytest.raises(TaskNotFoundError, match="too few distinct problems"):
        split_tasks(constant, other).sample(np.random.default_rng(0))
    for bad in ({"split": "validation"}, {"split": "test", "test_fraction": 0.0},
                {"split": "test", "test_fraction": 1.5}):  # fmt: skip
        with pytest.raises(ValueError):
            split_tasks(source, bad["split"], bad.get("test_fraction", 0.2))


def test_a_split_env_passes_the_conformance_checks_and_rejects_cross_split_ids():
    import rlenv
    from rlenv.testing import check_env

    env = rlenv.make("rlenv/Arithmetic-v0", split="test", difficulty=1)
    check_env(env, cross_process=False)
    train = rlenv.make("rlenv/Arithmetic-v0", split="train", difficulty=1)
    train.reset(seed=0)
    with pytest.raises(TaskNotFoundError):
        env.reset(options={"task_id": train.task.id})
    with pytest.raises(ValueError, match="split"):
        rlenv.make("rlenv/Arithmetic-v0", split="dev")
    bank = rlenv.make("rlenv/Bank-v0", split="test")
    assert 0 < len(bank.task_source) < len(rlenv.make("rlenv/Bank-v0").task_source)


def test_the_task_id_is_not_the_reset_seed_and_replays_by_info_task_id():
    import rlenv

    env = rlenv.make("rlenv/Arithmetic-v0")
    first, info = env.reset(seed=0)
    assert info["task_id"] != "seed-0"  # the id names the generator seed reset drew
    assert env.reset(options={"task_id": info["task_id"]})[0] == first
    with pytest.raises(TaskNotFoundError, match=r"not reset's seed.*info\['task_id'\]"):
        env.reset(options={"task_id": "0"})
