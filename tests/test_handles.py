"""rlenv.handles: the task handle, its one tag format (through JSON, parquet and HTTP), and the
seed rule every consumer shares."""

from __future__ import annotations

import json
import urllib.request

import pytest

import rlenv
from rlenv import EnvPool, TaskHandle, TaskTagError, score
from rlenv.handles import task_seeds
from rlenv.pool import pose_tasks
from rlenv.rollout import episodes

# Kwargs a tag must carry unchanged: unicode, a lone surrogate, quotes, nesting, numbers.
AWKWARD = TaskHandle(
    env_id="rlenv/Arithmetic-v0",
    env_kwargs={
        "system_prompt": 'Réponds. ☃ "quoted" \\ back\nslash \ud800 lone',
        "difficulty": 2,
        "nested": {"list": [1, 2.5, None, True], "empty": {}},
    },
    task_id="seed-12345678901234567890",
)
PLAIN = TaskHandle(env_id="rlenv/Arithmetic-v0", env_kwargs={"difficulty": 1}, task_id="seed-1")


def test_the_tag_is_sorted_ascii_json_with_the_three_fields():
    tag = AWKWARD.to_tag()
    assert tag.isascii()  # so it survives any encoding, even with a lone surrogate in a kwarg
    data = json.loads(tag)
    assert list(data) == ["env_id", "env_kwargs", "task_id"]
    assert data["env_kwargs"] == AWKWARD.env_kwargs
    assert PLAIN.to_tag() == (
        '{"env_id": "rlenv/Arithmetic-v0", "env_kwargs": {"difficulty": 1}, "task_id": "seed-1"}'
    )  # the format the adapters wrote before the handle existed: old datasets still read
    same = TaskHandle(env_id=PLAIN.env_id, env_kwargs={"difficulty": 1}, task_id="seed-1")
    assert same.to_tag() == PLAIN.to_tag()


@pytest.mark.parametrize("handle", [AWKWARD, PLAIN], ids=["awkward", "plain"])
def test_the_tag_round_trips_through_json(handle, tmp_path):
    assert TaskHandle.from_tag(handle.to_tag()) == handle
    assert TaskHandle.from_tag(handle.to_tag().encode()) == handle  # bytes
    assert TaskHandle.from_tag(json.loads(handle.to_tag())) == handle  # its decoded dict
    assert TaskHandle.from_tag(handle) is handle
    path = tmp_path / "rows.jsonl"  # a tag inside a JSON line, as OpenRLHF's rows hold it
    path.write_text(json.dumps({"label": handle.to_tag()}) + "\n", encoding="utf-8")
    row = json.loads(path.read_text(encoding="utf-8"))
    assert TaskHandle.from_tag(row["label"], field="label") == handle


def test_the_tag_round_trips_through_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed (pip install pyarrow)")
    pq = pytest.importorskip("pyarrow.parquet")
    handles = [AWKWARD, PLAIN, PLAIN.model_copy(update={"env_kwargs": {}})]
    table = pa.table({"ground_truth": [h.to_tag() for h in handles]})
    path = tmp_path / "tasks.parquet"
    pq.write_table(table, path)
    column = pq.read_table(path).column("ground_truth").to_pylist()
    assert [TaskHandle.from_tag(tag, field="ground_truth") for tag in column] == handles


def test_the_tag_round_trips_through_the_http_server():
    """A tag sent in a JSON body names the task the server scores: the same verdict as here."""
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    from rlenv.server import serve_in_thread

    env = rlenv.make("rlenv/Arithmetic-v0", difficulty=2)
    with EnvPool() as pool, serve_in_thread(["rlenv/Arithmetic-v0"]) as url:
        for task in pose_tasks(pool, "rlenv/Arithmetic-v0", {"difficulty": 2}, n_tasks=3):
            env.reset(options={"task_id": task.handle.task_id})
            for completion in (env.gold_action(), "\\boxed{-1}"):
                payload = {"tag": task.handle.to_tag(), "completion": completion}
                received = json.loads(json.dumps(payload))  # what a client or a worker reads
                handle = TaskHandle.from_tag(received["tag"], field="tag")
                body = _post(url + "/verify", {
                    "env_id": handle.env_id, "kwargs": handle.env_kwargs,
                    "task_id": handle.task_id, "completion": received["completion"],
                })  # fmt: skip
                back = TaskHandle(
                    env_id=handle.env_id, env_kwargs=handle.env_kwargs, task_id=body["task_id"]
                )
                assert back == task.handle
                local = score(pool, task.handle, completion)
                assert (body["reward"], body["verdict"]["scored"]) == (local.reward, True)
                assert body["verdict"]["reason"] == local.reason
            assert body["reward"] == 0.0 and local.reward == 0.0  # the wrong answer, last


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, no proxy
    with opener.open(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("42", "JSON object"),
        ("not json", "not JSON"),
        (b"\xff\xfe", "UTF-8"),
        (None, "NoneType"),
        (42, "int"),
        ('["a"]', "list"),
        ('{"env_id": "rlenv/Arithmetic-v0"}', "task_id"),
        ('{"env_id": "rlenv/Arithmetic-v0", "task_id": "seed-1", "env_kwargs": [1]}', "env_kwargs"),
        ('{"env_id": "", "task_id": "seed-1"}', "env_id"),
        ('{"env_id": 5, "task_id": "seed-1"}', "env_id"),
        ('{"env_id": "a/B-v0", "task_id": "seed-1", "seed": 3}', "seed"),
    ],
)
def test_what_is_not_a_tag_is_refused_naming_the_field_and_the_fix(value, problem):
    with pytest.raises(TaskTagError) as caught:
        TaskHandle.from_tag(value, field="reward_model.ground_truth")
    message = str(caught.value)
    assert message.startswith("reward_model.ground_truth is not an rlenv task tag")
    assert problem in message
    assert "export_parquet" in message and "to_tag()" in message  # how to build the data
    assert isinstance(caught.value, ValueError)  # existing `except ValueError` keeps working


def test_tags_written_with_int_task_ids_or_null_kwargs_still_read():
    handle = TaskHandle.from_tag('{"env_id": "a/B-v0", "env_kwargs": null, "task_id": 7}')
    assert handle == TaskHandle(env_id="a/B-v0", task_id="7")


@pytest.mark.parametrize("kwargs", [{"tasks": object()}, {"x": float("nan")}, {"x": {1, 2}}])
def test_kwargs_a_tag_cannot_carry_are_refused_when_the_handle_is_made(kwargs):
    with pytest.raises(ValueError, match="env_kwargs must be JSON data"):
        TaskHandle(env_id="a/B-v0", env_kwargs=kwargs, task_id="t")


def test_a_handle_is_frozen():
    with pytest.raises(ValueError):
        PLAIN.task_id = "other"  # type: ignore[misc]


# ------------------------------------------------------------------------------ the seed rule


def test_task_seeds_is_seed_plus_i():
    assert list(task_seeds(4, seed=10)) == [10, 11, 12, 13]
    assert list(task_seeds(0)) == []
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="n_tasks"):
            task_seeds(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed"):
        task_seeds(2, seed=-1)


def test_every_consumer_draws_the_same_tasks_for_a_seed():
    """The rollout engine's specs and every adapter's export name the same tasks."""
    env_id, kwargs, seed, n = "rlenv/Arithmetic-v0", {"difficulty": 2}, 11, 3
    env = rlenv.make(env_id, **kwargs)
    expected = []
    for task_seed in task_seeds(n, seed):
        _, info = env.reset(seed=task_seed)
        expected.append(TaskHandle(env_id=env_id, env_kwargs=kwargs, task_id=info["task_id"]))
    specs = episodes(env_id, n_tasks=n, seed=seed, **kwargs)
    assert [spec.seed for spec in specs] == list(task_seeds(n, seed))

    from rlenv.adapters import openrlhf, verl

    verl_rows = verl.build_rows(env_id, n, seed, **kwargs)
    assert [TaskHandle.from_tag(r["reward_model"]["ground_truth"]) for r in verl_rows] == expected
    assert [r["extra_info"]["seed"] for r in verl_rows] == list(task_seeds(n, seed))
    openrlhf_rows = openrlhf.build_rows(env_id, n, seed, **kwargs)
    assert [TaskHandle.from_tag(r["label"]) for r in openrlhf_rows] == expected
    try:
        from rlenv.adapters.trl import build_dataset, task_of

        dataset = build_dataset(env_id, n_tasks=n, seed=seed, **kwargs)
    except ImportError:  # datasets not installed: the other consumers still agree
        return
    assert [task_of(row["prompt"]) for row in dataset] == expected
