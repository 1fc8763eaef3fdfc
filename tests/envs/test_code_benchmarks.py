"""MBPP, MBPP sanitized and HumanEval+ on DatasetEnv: the sample rows load through the hub rows'
code, the reference solutions pass every sample task, and wrong, hard-coded and exit tricks
fail."""

from __future__ import annotations

import json
import warnings

import pytest

import rlenv
from rlenv.datasets import DatasetUnavailableError
from rlenv.envs.code.benchmarks import (
    HUB,
    MBPP,
    HumanEvalPlus,
    MBPPSanitized,
    evalplus_match,
    humanevalplus_tests,
)
from rlenv.testing import check_env

IDS = ["rlenv/MBPP-v0", "rlenv/MBPP-sanitized-v0", "rlenv/HumanEvalPlus-v0"]
CLASSES = [MBPP, MBPPSanitized, HumanEvalPlus]


@pytest.fixture(autouse=True)
def _sample_only(monkeypatch):
    monkeypatch.setenv("RLENV_BENCHMARK_SAMPLE", "1")


def _all_tasks(cls):
    env = cls(sample=True)
    return env, list(env.load_tasks())  # both sides of the content split


def _reply(code: str) -> str:
    return f"```python\n{code}\n```"


@pytest.mark.parametrize("env_id", IDS)
def test_registered_and_passes_check_env(env_id):
    assert env_id in rlenv.list_envs()
    report = check_env(env_id, n_actions=20, seeds=(0, 1))
    assert report.passed, report.failures


@pytest.mark.parametrize("cls", CLASSES)
def test_reference_solution_passes_every_sample_task(cls):
    env, tasks = _all_tasks(cls)
    assert 5 <= len(tasks) <= 10
    assert env.provenance["sample"] is True and "NOT the benchmark" in env.provenance["warning"]
    for task in tasks:
        assert task.metadata["provenance"] == "sample"
        env.reset(options={"task": task})
        _, reward, terminated, _, info = env.step(env.gold_action())
        assert terminated and reward == 1.0, (task.id, info["verdict"])


def _function_name(task) -> str:
    return task.metadata.get("entry_point") or task.metadata["tests"][-1].split("(")[0][7:]


@pytest.mark.parametrize("cls", CLASSES)
def test_wrong_hardcoded_and_exit_solutions_fail(cls):
    env, tasks = _all_tasks(cls)
    for task in tasks:
        name = _function_name(task)
        first = task.metadata["tests"]
        attacks = {
            "returns None": f"def {name}(*args, **kwargs):\n    return None",
            "exit(0) on load": "import sys\nsys.exit(0)",
            "exit(0) in the call": f"import sys\ndef {name}(*args, **kwargs):\n    sys.exit(0)",
            "os._exit(0)": f"import os\ndef {name}(*args, **kwargs):\n    os._exit(0)",
            "always-equal object": (
                f"class Eq:\n    def __eq__(self, other):\n        return True\n"
                f"def {name}(*args, **kwargs):\n    return Eq()"
            ),
            "raises": f"def {name}(*args, **kwargs):\n    raise AssertionError('x')",
        }
        if cls is not HumanEvalPlus:  # the first shown test's answer, hard-coded
            expected = first[0].split("==", 1)[1].strip()
            attacks["hard-coded first answer"] = (
                f"def {name}(*args, **kwargs):\n    return {expected}"
            )
        else:  # the first base input's output, hard-coded
            line = next(x for x in task.metadata["tests"].splitlines() if "assert" in x)
            expected = line.rsplit("), ", 1)[1].rsplit(",", 1)[0]
            attacks["hard-coded first answer"] = (
                f"def {name}(*args, **kwargs):\n    return {expected}"
            )
        for what, code in attacks.items():
            env.reset(options={"task": task})
            _, reward, _, _, info = env.step(_reply(code))
            assert reward == 0.0, (task.id, what, info["verdict"])
        env.reset(options={"task": task})
        _, reward, _, _, info = env.step("no code here")
        assert reward == 0.0 and "no code" in info["verdict"].reason


def test_sample_rows_have_the_hub_schema_and_load_through_the_hub_path(tmp_path):
    schemas = {
        "mbpp": ["task_id", "text", "code", "test_list", "test_setup_code", "challenge_test_list"],
        "mbpp-sanitized": ["source_file", "task_id", "prompt", "code", "test_imports", "test_list"],
        "humanevalplus": ["task_id", "prompt", "canonical_solution", "entry_point", "test"],
    }
    for name, columns in schemas.items():
        rows = [json.loads(line) for line in HUB[name]["sample"].read_text().splitlines()]
        assert all(list(row) == columns for row in rows), name
    # A local export of hub rows (source=PATH, what `datasets ... .to_json()` writes) takes the
    # same path as the hub: DatasetEnv's loader, then the benchmark's conversion.
    export = tmp_path / "mbpp_export.jsonl"
    export.write_text(HUB["mbpp"]["sample"].read_text())
    env = MBPP(source=str(export), sample=False)
    exported, sampled = list(env.load_tasks()), list(MBPP(sample=True).load_tasks())
    assert env.provenance["sample"] is False and env.provenance["kind"] == "file"
    assert [t.id for t in exported] == [t.id for t in sampled]
    assert [t.prompt for t in exported] == [t.prompt for t in sampled]
    assert all(t.metadata["provenance"] == "dataset" for t in exported)


def test_offline_hub_only_fails_loudly_and_the_default_warns(monkeypatch):
    monkeypatch.delenv("RLENV_BENCHMARK_SAMPLE")
    monkeypatch.setattr("rlenv.envs.code.benchmarks._hub_reachable", lambda: False)
    monkeypatch.setattr("rlenv.envs.code.benchmarks._warned", set())
    with pytest.warns(UserWarning, match="SAMPLE"):
        env = MBPP()
        env.reset(seed=0)
    assert env.provenance["sample"] is True

    def unavailable(*args, **kwargs):
        raise DatasetUnavailableError("no hub here")

    monkeypatch.setattr("rlenv.datasets._load_with_datasets", unavailable)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DatasetUnavailableError):
            MBPP(sample=False).reset(seed=0)


def test_mbpp_prompt_is_the_papers_and_ids_are_the_task_ids():
    env, tasks = _all_tasks(MBPP)
    task = next(t for t in tasks if t.id == "MBPP/11")
    text = task.prompt[0]["content"]
    assert text.startswith("You are an expert Python programmer, and here is your task: Write")
    assert 'assert remove_Occ("hello","l") == "heo"' in text
    assert len(task.metadata["tests"]) == 3


def test_humanevalplus_tests_one_assert_per_input_and_evalplus_comparison():
    row = json.loads(HUB["humanevalplus"]["sample"].read_text().splitlines()[1])
    tests = humanevalplus_tests(row["test"])
    assert tests.count("    assert _evalplus_match(") == 8  # 3 base + 5 plus inputs
    assert evalplus_match(0.5, 0.5, 0) and evalplus_match(0.1 + 0.2, 0.3, 0)
    assert evalplus_match([1.0, 2.0000001], [1.0, 2.0], 0)
    assert not evalplus_match(0.31, 0.3, 0) and not evalplus_match(1, 2, 0)
    assert not evalplus_match([1.0], [1.0, 2.0], 0) and not evalplus_match("a", 1.0, 0)
    assert not evalplus_match(float("nan"), 0.5, 0)


def test_humanevalplus_partial_reward_counts_inputs():
    env = HumanEvalPlus(sample=True, partial_reward=True)
    task = next(t for t in env.load_tasks() if t.id == "HumanEval/13")
    env.reset(options={"task": task})
    # right for the base inputs' usual case, wrong when one argument is 0
    code = "def greatest_common_divisor(a, b):\n    import math\n    return math.gcd(a, b) if a else -1"
    _, reward, _, _, info = env.step(_reply(code))
    assert 0.0 < reward < 1.0, info["verdict"]
