"""LiveCodeBench on DatasetEnv: the sample rows (in the hub's schema, one of them with private
tests encoded as the hub encodes them) load through the hub rows' code; the reference solutions
pass; wrong, slow, crashing, exiting, hard-coded and missing code score 0; LiveCodeBench's
output comparison; the release-date filter; a malicious pickle is refused without running."""

from __future__ import annotations

import base64
import json
import os
import pickle
import zlib

import pytest

import rlenv
from rlenv.datasets import DatasetError, DatasetUnavailableError
from rlenv.envs.code.benchmarks import (
    HUB,
    SAMPLE_SOLUTION_FIELD,
    LiveCodeBench,
    decode_private_tests,
    lcb_call_match,
    lcb_stdio_match,
)
from rlenv.errors import RLEnvError
from rlenv.testing import check_env

SAMPLE = HUB["livecodebench"]["sample"]
COLUMNS = [
    "question_title",
    "question_content",
    "platform",
    "question_id",
    "contest_id",
    "contest_date",
    "starter_code",
    "difficulty",
    "public_test_cases",
    "private_test_cases",
    "metadata",
]


@pytest.fixture(autouse=True)
def _sample_only(monkeypatch):
    monkeypatch.setenv("RLENV_BENCHMARK_SAMPLE", "1")


def _reply(code: str) -> str:
    return f"```python\n{code}\n```"


def _env(**kwargs) -> tuple[LiveCodeBench, list]:
    kwargs.setdefault("timeout", 2.0)
    env = LiveCodeBench(sample=True, **kwargs)
    return env, list(env.load_tasks())


def _step(env, task, reply):
    env.reset(options={"task": task})
    if callable(reply):  # env.gold_action: the task's own, after the reset
        reply = reply()
    _, reward, terminated, _, info = env.step(reply)
    assert terminated
    return reward, info["verdict"]


def test_registered_and_passes_check_env():
    assert "rlenv/LiveCodeBench-v0" in rlenv.list_envs()
    report = check_env("rlenv/LiveCodeBench-v0", n_actions=12, seeds=(0,))
    assert report.passed, report.failures


def test_sample_has_the_hub_schema_and_an_encoded_private_test_row():
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    assert 6 <= len(rows) <= 10
    assert all(list(row) == [*COLUMNS, SAMPLE_SOLUTION_FIELD] for row in rows)
    assert {row["platform"] for row in rows} == {"leetcode", "atcoder", "codeforces"}
    encoded = [row for row in rows if not row["private_test_cases"].startswith("[")]
    assert encoded, "no row exercises the base64/zlib/pickle decoder"
    for row in rows:
        for case in json.loads(row["public_test_cases"]) + decode_private_tests(
            row["private_test_cases"]
        ):
            assert set(case) == {"input", "output", "testtype"}
        assert ("func_name" in json.loads(row["metadata"])) == (row["platform"] == "leetcode")


def test_reference_solution_passes_every_sample_task():
    env, tasks = _env()
    assert env.provenance["sample"] is True and "NOT the benchmark" in env.provenance["warning"]
    assert len(tasks) == 7
    for task in tasks:
        assert task.metadata["provenance"] == "sample"
        reward, verdict = _step(env, task, env.gold_action)
        assert reward == 1.0, (task.id, verdict)
        assert verdict.components["tests_total"] == len(env.cases(task)) >= 3


def test_prompt_is_livecodebenchs_generic_template():
    env, tasks = _env()
    stdin = next(t for t in tasks if not t.metadata["func_name"])
    leet = next(t for t in tasks if t.metadata["func_name"])
    messages = env.reset(options={"task": stdin})[0]
    text = stdin.prompt if isinstance(stdin.prompt, str) else stdin.prompt[0]["content"]
    assert text.startswith("### Question:\n")
    assert "Read the inputs from stdin solve the problem" in text
    assert "```python\n# YOUR CODE HERE\n```" in text
    assert text.endswith("### Answer: (use the provided format with backticks)\n\n")
    leet_text = leet.prompt if isinstance(leet.prompt, str) else leet.prompt[0]["content"]
    assert "You will use the following starter code" in leet_text
    assert "class Solution:" in leet_text
    assert "expert Python programmer" in json.dumps(messages)  # LCB's system message


def _attacks_stdin(task, first_output: str) -> dict[str, str]:
    return {
        "wrong output": "print('definitely wrong')",
        "timeout": "while True:\n    pass",
        "crash": "raise RuntimeError('boom')",
        "sys.exit(0), no output": "import sys\nsys.exit(0)",
        "os._exit(0), no output": "import os\nos._exit(0)",
        "hard-coded case 1": f"import sys\nsys.stdout.write({first_output!r})",
        "empty program": "pass",
        "right output of case 1, then a crash": (
            f"import sys\nsys.stdout.write({first_output!r})\nsys.stdout.flush()\n"
            "raise ValueError('late')"
        ),
    }


def _attacks_functional(name: str, first_output) -> dict[str, str]:
    sig = f"class Solution:\n    def {name}(self, *args):\n"
    return {
        "wrong output": sig + "        return -12345",
        "timeout": sig + "        while True:\n            pass",
        "crash": sig + "        raise RuntimeError('boom')",
        "sys.exit(0)": "import sys\n" + sig + "        sys.exit(0)",
        "exit on load": "import sys\nsys.exit(0)",
        "hard-coded case 1": sig + f"        return {first_output!r}",
        "always-equal object": (
            "class Eq:\n    def __eq__(self, other):\n        return True\n"
            + sig
            + "        return Eq()"
        ),
        "no Solution": "def helper():\n    return 1",
    }


def test_wrong_slow_crashing_exiting_hardcoded_and_missing_code_score_zero():
    env, tasks = _env(timeout=0.5)
    timed = {"LiveCodeBench/sample-abc001_a", "LiveCodeBench/sample-3001"}  # keep it fast
    for task in tasks:
        first = json.loads(task.metadata["public_test_cases"])[0]["output"]
        name = task.metadata["func_name"]
        attacks = (
            _attacks_functional(name, json.loads(first)) if name else _attacks_stdin(task, first)
        )
        if task.id not in timed:
            del attacks["timeout"]
        for what, code in attacks.items():
            reward, verdict = _step(env, task, _reply(code))
            assert reward == 0.0, (task.id, what, verdict)
        reward, verdict = _step(env, task, "I would sort the numbers.")
        assert reward == 0.0 and verdict.reason == "no code"


def test_livecodebench_imports_and_main_guard_are_honoured():
    env, tasks = _env()
    task = next(t for t in tasks if t.id == "LiveCodeBench/sample-abc367_a")
    # no `import math`: LCB's harness imports it (testing_util.import_string)
    code = "n, k = map(int, input().split())\nprint(math.floor(n // k))"
    assert _step(env, task, _reply(code))[0] == 1.0
    code = "def main():\n    n, k = map(int, input().split())\n    print(n // k)\n\n"
    code += "if __name__ == '__main__':\n    main()"
    assert _step(env, task, _reply(code))[0] == 1.0
    # the right output, then an exception: LCB's "Runtime Error" fails the test
    late = "n, k = map(int, input().split())\nprint(n // k)\nraise ValueError('late')"
    reward, verdict = _step(env, task, _reply(late))
    assert reward == 0.0 and verdict.components["tests_passed"] == 0
    # sys.exit after the output passes, as LCB swallows SystemExit
    code = "import sys\nn, k = map(int, input().split())\nprint(n // k)\nsys.exit(3)"
    assert _step(env, task, _reply(code))[0] == 1.0
    leet = next(t for t in tasks if t.id == "LiveCodeBench/sample-3001")
    code = (  # List from typing, unimported; a tuple-returning helper is fine
        "class Solution:\n    def largestPairSum(self, nums: List[int]) -> int:\n"
        "        return nlargest(2, nums)[0] + nlargest(2, nums)[1]"
    )
    assert _step(env, leet, _reply(code))[0] == 1.0


def test_stdio_comparison_is_livecodebenchs():
    assert lcb_stdio_match("8\n", "8")
    assert lcb_stdio_match("  8  \n\n", "\n8\n")  # stripped lines and text
    assert lcb_stdio_match("2.50\n", "2.5\n") and lcb_stdio_match("1e3", "1000")
    assert lcb_stdio_match("1  2   3", "1 2 3")  # tokens as decimals
    assert not lcb_stdio_match("0.3333", "0.333333")  # no tolerance
    assert not lcb_stdio_match("a  b", "a b")  # not numbers: the line must be equal
    assert not lcb_stdio_match("1\n2", "1 2") and not lcb_stdio_match("", "0")
    assert not lcb_stdio_match("1\n\n2", "1\n2")  # an inner blank line is a line
    assert lcb_call_match((1, 2), [1, 2]) and not lcb_call_match([1, 2], [2, 1])
    assert lcb_call_match(2.0, 2) and not lcb_call_match("2", 2)


def test_release_date_filter_keeps_and_drops_the_right_rows():
    all_ids = {t.id for t in _env()[1]}
    _, after = _env(start_date="2024-08-01")
    assert {t.metadata["contest_date"][:10] for t in after} == {
        "2024-08-17",
        "2024-09-07",
        "2025-01-04",
        "2025-02-10",
    }
    _, window = _env(start_date="2024-01-13", end_date="2024-08-17")
    assert sorted(t.metadata["contest_date"][:10] for t in window) == [
        "2024-01-13",
        "2024-03-02",
        "2024-08-17",
    ]  # both ends inclusive, as LiveCodeBench compares them
    env, before = _env(end_date="2023-12-31")
    assert [t.id for t in before] == ["LiveCodeBench/sample-abc001_a"]
    assert env.provenance["filters"]["kept"] == 1 and env.provenance["filters"]["rows"] == 7
    _, leet = _env(platform="leetcode", difficulty=["easy", "medium"])
    assert {t.metadata["platform"] for t in leet} == {"leetcode"} and len(leet) == 2
    assert {t.id for t in after} | {t.id for t in window} <= all_ids


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"start_date": "08/01/2024"}, "ISO date YYYY-MM-DD"),
        ({"end_date": "2024-13-01"}, "ISO date YYYY-MM-DD"),
        ({"start_date": "2024-09-01", "end_date": "2024-08-01"}, "is after end_date"),
        ({"release": "release_v9"}, "release_v1"),
        ({"platform": "topcoder"}, "choose from"),
    ],
)
def test_bad_filters_raise_clear_errors(kwargs, message):
    with pytest.raises(RLEnvError, match=message):
        LiveCodeBench(sample=True, **kwargs)


def test_no_problem_in_range_is_a_clear_error():
    with pytest.raises(DatasetError, match="no LiveCodeBench problem passes the filters"):
        _env(start_date="2030-01-01")


class _Boom:
    def __reduce__(self):
        return (os.system, ("echo PWNED > /dev/null",))


def _encode(obj) -> str:
    return base64.b64encode(zlib.compress(pickle.dumps(obj))).decode()


def test_a_pickle_naming_a_global_is_refused_and_never_run(monkeypatch, tmp_path):
    evil = _encode(_Boom())  # pickled while os.system is the real one
    calls = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a) or 0)
    with pytest.raises(DatasetError, match=r"refused: .*global (posix|os|nt)\.system"):
        decode_private_tests(evil)
    assert calls == []
    with pytest.raises(DatasetError, match="not a JSON string"):
        decode_private_tests(_encode([1, 2]))  # plain data, but not LCB's str
    with pytest.raises(DatasetError, match="cannot be decoded"):
        decode_private_tests("not base64 nor json !!")
    assert decode_private_tests(_encode(json.dumps([{"input": "1", "output": "1"}])))[0] == {
        "input": "1",
        "output": "1",
    }
    # through the env: a row with a malicious payload fails loudly at scoring, runs nothing
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    rows[0]["private_test_cases"] = evil
    export = tmp_path / "evil.jsonl"
    export.write_text("".join(json.dumps(row) + "\n" for row in rows))
    env = LiveCodeBench(source=str(export), sample=False)
    task = next(t for t in env.load_tasks() if t.id.endswith(rows[0]["question_id"]))
    env.reset(options={"task": task})
    _, reward, _, _, info = env.step(env.gold_action())  # a verifier failure: unscored, 0
    assert reward == 0.0 and not info["verdict"].scored
    assert "refused" in info["verdict"].error
    assert calls == []


def test_local_export_and_hub_folder_load_through_the_hub_path(tmp_path, monkeypatch):
    export = tmp_path / "lcb_export.jsonl"
    export.write_text(SAMPLE.read_text())
    env = LiveCodeBench(source=str(export), sample=False, start_date="2024-08-01")
    tasks = list(env.load_tasks())
    assert env.provenance["sample"] is False and env.provenance["kind"] == "file"
    assert len(tasks) == 4 and all(t.metadata["provenance"] == "dataset" for t in tasks)
    # a folder of the hub's files (a clone of the repo): the release's files are read
    lines = SAMPLE.read_text().splitlines(keepends=True)
    (tmp_path / "hub").mkdir()
    (tmp_path / "hub" / "test.jsonl").write_text("".join(lines[:4]))
    (tmp_path / "hub" / "test2.jsonl").write_text("".join(lines[4:]))
    assert (
        len(LiveCodeBench(source=str(tmp_path / "hub"), release="v1", sample=False).load_tasks())
        == 4
    )
    assert (
        len(
            LiveCodeBench(
                source=str(tmp_path / "hub"), release="release_v2", sample=False
            ).load_tasks()
        )
        == 7
    )
    assert (
        len(LiveCodeBench(source=str(tmp_path / "hub"), release="v2", sample=False).load_tasks())
        == 3
    )
    with pytest.raises(DatasetError, match=r"lacks test3\.jsonl"):
        LiveCodeBench(source=str(tmp_path / "hub"), release="release_v3", sample=False).load_tasks()


def test_offline_hub_only_fails_loudly(monkeypatch):
    monkeypatch.delenv("RLENV_BENCHMARK_SAMPLE")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("rlenv.envs.code.benchmarks._warned", set())

    def unavailable(self):
        raise DatasetUnavailableError("no hub here")

    monkeypatch.setattr(LiveCodeBench, "_hub_rows", unavailable)
    with pytest.raises(DatasetUnavailableError):
        LiveCodeBench(sample=False).load_tasks()
    with pytest.warns(UserWarning, match="SAMPLE"):
        env = LiveCodeBench(sample=None)
        assert len(env.load_tasks()) == 7 and env.provenance["sample"] is True
