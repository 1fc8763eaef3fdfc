"""rlenv.datasets: any dataset as an environment (sources, field mapping, verifiers by name,
content split and ids, retries, registration, the ``dataset:`` id in the CLI)."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import rlenv
from rlenv.cli import main
from rlenv.datasets import (
    DatasetEnv,
    DatasetError,
    DatasetFieldError,
    DatasetUnavailableError,
    register_dataset,
    resolve_dataset_id,
)
from rlenv.errors import EnvArgumentError
from rlenv.tasks import split_of
from rlenv.testing import check_env
from rlenv.verdict import Verdict
from rlenv.verifiers.compose import boxed_format, weighted

ROOT = Path(__file__).resolve().parent.parent
ARITH = ROOT / "examples" / "data" / "arith.jsonl"
ROWS = [
    {"question": "What is 2 + 3?", "answer": "5", "level": 1},
    {"question": "What is 7 * 6?", "answer": "42", "level": 2},
    {"question": "What is 1/2 + 1/4?", "answer": "\\frac{3}{4}", "level": 3},
]


def reward(env: DatasetEnv, action: str, *, seed: int = 0, task_id: str | None = None) -> Verdict:
    env.reset(seed=seed, options={"task_id": task_id} if task_id else None)
    return env.step(action)[4]["verdict"]


def only(rows: list[dict], **kwargs) -> DatasetEnv:
    """An env over one row, so every reset poses it."""
    return DatasetEnv(rows[:1], **kwargs)


# ----------------------------------------------------------------------------- sources


def test_the_readme_example_runs_as_written(monkeypatch):
    monkeypatch.chdir(ROOT)
    env = rlenv.DatasetEnv("examples/data/arith.jsonl", verifier="math")
    observation, info = env.reset(seed=0)
    observation, reward_, terminated, truncated, info = env.step(env.gold_action())
    assert (reward_, terminated, truncated) == (1.0, True, False)
    assert len(env.task_source) == 30 and env.provenance["format"] == "jsonl"
    assert env.provenance["sha256"] == hashlib.sha256(ARITH.read_bytes()).hexdigest()


def _write(tmp_path: Path, suffix: str) -> Path:
    path = tmp_path / f"rows{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n\n" for row in ROWS))
    elif suffix == ".json":
        path.write_text(json.dumps(ROWS))
    elif suffix == ".csv":
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(ROWS[0]))
            writer.writeheader()
            writer.writerows(ROWS)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(ROWS), path)
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".parquet"])
def test_each_file_format_gives_the_same_tasks_as_the_list(tmp_path, suffix):
    from_list = DatasetEnv(ROWS, metadata_fields=[])
    from_file = DatasetEnv(_write(tmp_path, suffix), metadata_fields=[])
    assert [t.prompt for t in from_file.task_source] == [t.prompt for t in from_list.task_source]
    assert [str(t.answer) for t in from_file.task_source] == [
        t.answer for t in from_list.task_source
    ]
    assert from_file.provenance["format"] == suffix[1:] and from_file.provenance["rows"] == 3
    env = DatasetEnv(_write(tmp_path, suffix))
    task = next(t for t in env.task_source if t.answer == "42")
    assert reward(env, "So 7 * 6 = \\boxed{42}.", task_id=task.id).reward == 1.0


def test_a_dataset_folder_loads_through_datasets_load_dataset(tmp_path):
    """The hub path: `datasets.load_dataset(source, config, split=, revision=)` on a folder as
    `huggingface-cli download` leaves one (no hub is reachable here)."""
    pytest.importorskip("datasets")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (tmp_path / "data" / "test.jsonl").write_text(json.dumps(ROWS[0]) + "\n")
    train = DatasetEnv(str(tmp_path))
    test = DatasetEnv(str(tmp_path), data_split="test")
    assert len(train.task_source) == 3 and len(test.task_source) == 1
    assert train.provenance["kind"] == "folder" and test.provenance["data_split"] == "test"
    same = DatasetEnv(ROWS)  # ids are content hashes: the same rows, the same ids
    assert [t.id for t in train.task_source] == [t.id for t in same.task_source]
    assert reward(test, "\\boxed{5}").reward == 1.0


def test_an_unreachable_hub_dataset_says_which_and_how_to_get_it(monkeypatch):
    datasets = pytest.importorskip("datasets")
    import huggingface_hub.constants

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DatasetUnavailableError) as caught:
        DatasetEnv("rlenv-tests/no-such-dataset", revision="0123abc", config="main")
    message = str(caught.value)
    assert "'rlenv-tests/no-such-dataset'" in message and "0123abc" in message
    assert "HF_DATASETS_OFFLINE" in message and "huggingface-cli download" in message


def test_a_missing_file_or_unknown_type_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match=r"no such dataset file: .*nope.jsonl"):
        DatasetEnv(str(tmp_path / "nope.jsonl"))
    (tmp_path / "rows.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"unknown file type '\.txt'"):
        DatasetEnv(tmp_path / "rows.txt")
    (tmp_path / "bad.jsonl").write_text('{"question": "q", "answer": "1"}\nnot json\n')
    with pytest.raises(DatasetError, match=r"bad\.jsonl:2: not JSON"):
        DatasetEnv(tmp_path / "bad.jsonl")
    with pytest.raises(DatasetError, match="row 1 of the list is a str"):
        DatasetEnv([ROWS[0], "a string"])
    with pytest.raises(DatasetError, match="no rows"):
        DatasetEnv([])


# ----------------------------------------------------------------------------- field mapping


def test_a_named_field_that_is_missing_names_it_and_the_columns():
    with pytest.raises(DatasetFieldError) as caught:
        DatasetEnv(ROWS, prompt_field="query")
    assert "prompt_field='query'" in str(caught.value)
    assert "['question', 'answer', 'level']" in str(caught.value)


def test_no_default_column_names_the_candidates_and_the_columns():
    with pytest.raises(DatasetFieldError) as caught:
        DatasetEnv([{"q": "What is 2 + 3?", "a": "5"}])
    message = str(caught.value)
    assert "no prompt column" in message and "question" in message and "['q', 'a']" in message
    env = DatasetEnv([{"q": "What is 2 + 3?", "a": "5"}], prompt_field="q", answer_field="a")
    assert reward(env, "\\boxed{5}").reward == 1.0


def test_a_row_without_the_column_names_the_row():
    with pytest.raises(DatasetFieldError, match=r"row 1 .* no answer column 'answer'"):
        DatasetEnv([ROWS[0], {"question": "What is 1 + 1?"}])
    with pytest.raises(DatasetError, match=r"row 1: the answer .* is empty"):
        DatasetEnv([ROWS[0], {"question": "What is 1 + 1?", "answer": ""}])


def test_template_system_prompt_and_metadata():
    env = only(
        ROWS,
        prompt_template="Level {level}. {prompt} {instruction}",
        system_prompt="You are a calculator.",
        metadata_fields=["level"],
    )
    observation, _ = env.reset(seed=0)
    assert observation == [
        {"role": "system", "content": "You are a calculator."},
        {"role": "user", "content": "Level 1. What is 2 + 3? Put your final answer in \\boxed{}."},
    ]
    assert env.task.metadata == {"level": 1}
    with pytest.raises(DatasetFieldError, match=r"\{difficulty\}.*\['question', 'answer'"):
        DatasetEnv(ROWS, prompt_template="{difficulty}: {prompt}")
    plain = only(ROWS, instruction="")
    assert plain.reset(seed=0)[0][-1]["content"] == "What is 2 + 3?"


def test_a_prompt_given_as_chat_messages_is_posed_as_it_stands():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+3?"}]
    env = DatasetEnv([{"messages": messages, "answer": "5"}], prompt_field="messages")
    assert env.reset(seed=0)[0] == messages


def test_tools_are_offered_with_their_task():
    tool = {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}
    rows = [{"question": "Add 2 and 3.", "answer": "5", "tools": [tool]}]
    env = DatasetEnv(rows, tools_field="tools")
    _, info = env.reset(seed=0)
    assert info["tools"] == [tool] and env.task.metadata["tools"] == [tool]
    with pytest.raises(DatasetError, match="must be a list of schemas"):
        DatasetEnv([{**rows[0], "tools": "add"}], tools_field="tools")


# ----------------------------------------------------------------------------- verifiers


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("2 + 3 = 5, so the answer is \\boxed{5}.", 1.0),
        ("\\boxed{5.0}", 1.0),
        ("\\boxed{6}", 0.0),
        ("\\boxed{4, 5, 6}", 0.0),  # listing candidates
        ("<think>\\boxed{5}</think>", 0.0),  # reasoning never answers
        ("\\boxed{2 + 3}", 0.0),  # restating the question
        ("", 0.0),
        ("\\boxed{5", 0.0),  # an unclosed box
    ],
)
def test_math_verifier(completion, expected):
    assert reward(only(ROWS), completion).reward == expected


def test_math_require_boxed_is_a_format_gate():
    env = only(ROWS, require_boxed=True)
    assert reward(env, "The answer is 5.").reward == 0.0
    assert reward(env, "The answer is \\boxed{5}.").reward == 1.0
    assert reward(only(ROWS), "The answer is 5.").reward == 1.0


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("Paris", 1.0),
        ("  paris. ", 1.0),  # case and a full stop do not count
        ("The answer is **Paris**.", 1.0),
        ("\\boxed{Paris}", 1.0),
        ("Paris or London", 0.0),
        ("It is not Paris; the capital is surely London, as everyone knows.", 0.0),
        ("\\boxed{Paris, London, Rome}", 0.0),
        ("<think>Paris</think>", 0.0),
        ("Pari", 0.0),
    ],
)
def test_exact_verifier(completion, expected):
    env = only([{"question": "Capital of France?", "answer": "Paris"}], verifier="exact")
    assert reward(env, completion).reward == expected


def test_exact_can_be_case_sensitive():
    rows = [{"question": "Chemical symbol of sodium?", "answer": "Na"}]
    assert reward(only(rows, verifier="exact", case_sensitive=True), "NA").reward == 0.0
    assert reward(only(rows, verifier="exact", case_sensitive=True), "Na").reward == 1.0


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("12 apples", 1.0),
        ("The answer is 7 Apples.", 1.0),
        ("12 apples and 13 pears", 0.0),  # the whole answer must match
        ("apples", 0.0),
        ("I have 12 apples, or maybe 12 apples\n\nno answer here", 0.0),
    ],
)
def test_regex_verifier(completion, expected):
    env = only([{"question": "How many apples?", "answer": r"\d+ apples"}], verifier="regex")
    assert reward(env, completion).reward == expected
    assert env.gold_action() is None  # a pattern is not an answer


def test_an_invalid_pattern_is_not_the_models_fault():
    env = only([{"question": "q?", "answer": "(unclosed"}], verifier="regex")
    verdict = reward(env, "anything")
    assert not verdict.scored and "invalid gold pattern" in verdict.error


CHOICE_ROWS = [
    {"question": "Which is a prime?", "options": ["4", "7", "9", "12"], "answer": "B"},
    {"question": "Which is even?", "options": ["3", "5", "8", "9"], "answer": 2},
    {"question": "Which is odd?", "options": ["2", "4", "6", "9"], "answer": "9"},
]


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("(B)", 1.0),
        ("The answer is B.", 1.0),
        ("\\boxed{B}", 1.0),
        ("b", 1.0),  # a reply that is just a letter (grade's rule)
        ("I think it is b, or maybe c.", 0.0),
        ("(A)", 0.0),
        ("(A) (B) (C) (D)", 0.0),  # listing every option: the last one counts
        ("<think>(B)</think> (C)", 0.0),
        ("7", 0.0),
    ],
)
def test_choice_verifier(completion, expected):
    env = only(CHOICE_ROWS, verifier="choice", choices_field="options")
    assert reward(env, completion).reward == expected


def test_choice_gold_as_index_or_option_text_and_lettered_options():
    env = DatasetEnv(CHOICE_ROWS, verifier="choice", choices_field="options")
    by_question = {t.prompt[0]["content"].split("\n")[0]: t.id for t in env.task_source}
    assert reward(env, "(C)", task_id=by_question["Which is even?"]).reward == 1.0
    assert reward(env, "(D)", task_id=by_question["Which is odd?"]).reward == 1.0
    assert env.task.prompt[0]["content"] == (
        "Which is odd?\n\nA. 2\nB. 4\nC. 6\nD. 9\n\nAnswer with the letter of the correct option."
    )
    for task in env.task_source:
        env.reset(options={"task_id": task.id})
        assert env.step(env.gold_action())[1] == 1.0


CODE_ROWS = [
    {
        "prompt": "Write add(a, b).",
        "tests": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"],
        "solution": "def add(a, b):\n    return a + b",
    },
    {"prompt": "Echo one line.", "tests": [{"input": "hi\n", "output": "hi"}]},
]


def test_code_verifier_runs_the_tests_in_the_sandbox():
    env = DatasetEnv(CODE_ROWS[:1], verifier="code")
    env.reset(seed=0)
    assert env.gold_action() == f"```python\n{CODE_ROWS[0]['solution']}\n```"
    assert reward(env, env.gold_action()).reward == 1.0
    wrong = reward(env, "```python\ndef add(a, b):\n    return 3\n```")
    assert wrong.reward == 0.0 and wrong.reason.startswith("1/2 tests passed")
    assert reward(env, "I would add them.").error == "no ```python code block found"
    io = DatasetEnv(CODE_ROWS[1:], verifier="code")
    assert reward(io, "```python\nprint(input())\n```").reward == 1.0
    assert reward(io, "```python\nprint('hi there')\n```").reward == 0.0
    assert io.gold_action() is None


def test_code_needs_tests():
    with pytest.raises(DatasetFieldError, match="no tests column"):
        DatasetEnv(ROWS, verifier="code")


def test_a_callable_or_a_composition_is_a_verifier():
    def shouts(completion, task):
        return completion.isupper()

    assert reward(only(ROWS, verifier=shouts), "FIVE").reward == 1.0
    assert reward(only(ROWS, verifier=shouts), "five").reward == 0.0
    composed = weighted(format=(boxed_format(), 0.5), shouts=(shouts, 0.5))
    verdict = reward(only(ROWS, verifier=composed), "\\boxed{five}")
    assert verdict.reward == 0.5 and verdict.components == {"format": 1.0, "shouts": 0.0}
    with pytest.raises(DatasetError, match="unknown verifier 'maths'"):
        DatasetEnv(ROWS, verifier="maths")


# ----------------------------------------------------------------------------- split and ids


def test_content_split_is_deterministic_disjoint_and_complete():
    every = DatasetEnv(ARITH)
    train = DatasetEnv(ARITH, split="train")
    test = DatasetEnv(ARITH, split="test", test_fraction=0.2)
    train_ids = {t.id for t in train.task_source}
    test_ids = {t.id for t in test.task_source}
    assert train_ids.isdisjoint(test_ids) and train_ids | test_ids == {
        t.id for t in every.task_source
    }
    assert test_ids == {t.id for t in every.task_source if split_of(t) == "test"} != set()
    assert [t.id for t in DatasetEnv(ARITH, split="test").task_source] == [
        t.id for t in test.task_source
    ]


def test_ids_are_content_hashes_stable_across_processes():
    row = ROWS[0]
    canonical = json.dumps(row, sort_keys=True, ensure_ascii=False)
    expected = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    assert DatasetEnv(ROWS).task_source[0].id == expected
    here = [t.id for t in DatasetEnv(ARITH).task_source]
    script = (
        "import json, rlenv; "
        f"print(json.dumps([t.id for t in rlenv.DatasetEnv({str(ARITH)!r}).task_source]))"
    )
    child = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
    )
    assert json.loads(child.stdout) == here
    assert len(set(here)) == 30


def test_an_id_column_and_duplicate_rows():
    env = DatasetEnv([{**r, "uid": f"q{i}"} for i, r in enumerate(ROWS)], id_field="uid")
    assert [t.id for t in env.task_source] == ["q0", "q1", "q2"]
    assert len(DatasetEnv([ROWS[0], ROWS[0], ROWS[1]]).task_source) == 2  # same row: one task
    with pytest.raises(DatasetError, match="duplicate id 'x'"):
        DatasetEnv([{**r, "uid": "x"} for r in ROWS], id_field="uid")


def test_same_seed_same_task():
    first, second = DatasetEnv(ARITH), DatasetEnv(ARITH)
    for seed in range(5):
        assert first.reset(seed=seed) == second.reset(seed=seed)


# ----------------------------------------------------------------------------- retries


def test_retry_with_feedback_decays_the_reward():
    env = only(ROWS, max_turns=3, decay=0.5)
    env.reset(seed=0)
    _, r, terminated, truncated, info = env.step("\\boxed{6}")
    assert (r, terminated, truncated) == (0.0, False, False)
    assert info["new_messages"][-1] == {
        "role": "user",
        "content": "That is not correct. Try again.",
    }
    _, r, terminated, _, info = env.step("I did not answer")
    assert r == 0.0 and not terminated and "no final answer" in info["new_messages"][-1]["content"]
    _, r, terminated, truncated, _ = env.step("\\boxed{5}")
    assert (r, terminated, truncated) == (0.25, True, False)
    env.reset(seed=0)
    for _ in range(3):
        _, r, terminated, truncated, info = env.step("\\boxed{4}")
    assert (r, terminated, truncated) == (0.0, False, True)
    assert "last attempt" in info["new_messages"][-1]["content"]
    assert "5" not in info["new_messages"][-1]["content"]  # feedback never gives the answer


# ----------------------------------------------------------------------------- conformance


@pytest.mark.parametrize(
    "kwargs",
    [
        {"verifier": "math"},
        {"verifier": "exact", "max_turns": 2},
        {"verifier": "math", "split": "train", "system_prompt": "Be brief."},
    ],
    ids=["math", "exact-retry", "train-split"],
)
def test_check_env_passes(kwargs):
    env_id = register_dataset("tests_datasets/Arith-v0", ARITH, override=True, **kwargs)
    try:
        report = check_env(env_id, n_actions=60, seeds=(0, 1))
        assert report.passed, str(report)
        assert "cross-process determinism" in str(report)
    finally:
        rlenv.unregister(env_id)


def test_check_env_on_choice_and_code_instances():
    assert check_env(
        DatasetEnv(CHOICE_ROWS, verifier="choice", choices_field="options"),
        n_actions=30,
        cross_process=False,
    ).passed
    assert check_env(
        DatasetEnv(CODE_ROWS[:1], verifier="code"), n_actions=8, seeds=(0,), cross_process=False
    ).passed


# ----------------------------------------------------------------------------- registry and CLI


def test_register_in_one_call():
    env_id = register_dataset("tests_datasets/Capitals-v0", [
        {"question": "Capital of France?", "answer": "Paris"},
    ], verifier="exact")  # fmt: skip
    try:
        env = rlenv.make(env_id)
        assert isinstance(env, DatasetEnv) and reward(env, "Paris").reward == 1.0
        assert env_id in rlenv.list_envs("tests_datasets")
        with pytest.raises(EnvArgumentError, match="verifer"):
            register_dataset("tests_datasets/Bad-v0", ARITH, verifer="math")
    finally:
        rlenv.unregister(env_id)


def test_dataset_ids_resolve_to_one_registered_id(monkeypatch):
    monkeypatch.chdir(ROOT)
    resolved = resolve_dataset_id("dataset:examples/data/arith.jsonl")
    assert resolved == resolve_dataset_id(f"dataset:{ARITH}")
    assert resolved.startswith("dataset/arith-") and resolved.endswith("-v0")
    assert rlenv.spec("dataset:examples/data/arith.jsonl").id == resolved
    env = rlenv.make("dataset:examples/data/arith.jsonl", verifier="exact")
    assert env.verifier_name == "exact" and env.spec.kwargs["source"] == str(ARITH)
    hub = resolve_dataset_id("dataset:openai/gsm8k@e53f048")
    assert rlenv.spec(hub).kwargs == {"source": "openai/gsm8k", "revision": "e53f048"}


def test_cli_check_info_and_collect_on_a_dataset_file(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    assert main(["check", "dataset:examples/data/arith.jsonl", "--actions", "20"]) == 0
    assert "passed" in capsys.readouterr().out
    assert main(["info", "dataset:examples/data/arith.jsonl", "--verifier", "exact"]) == 0
    out = capsys.readouterr().out
    assert '"verifier": "exact"' in out and "gold action: " in out
    out_file = tmp_path / "gold.jsonl"
    code = main(["collect", "dataset:examples/data/arith.jsonl", "--gold", "--verifier", "math",
                 "-n", "3", "--out", str(out_file)])  # fmt: skip
    assert code == 0
    lines = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert len(lines) == 3 and all(line["reward"] == 1.0 for line in lines)
    assert all(line["env_id"] == "dataset:examples/data/arith.jsonl" for line in lines)


def test_cli_usage_errors_are_one_line(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["info", "dataset:examples/data/arith.jsonl", "--verifier", "maths"]) == 2
    assert "unknown verifier 'maths'" in capsys.readouterr().err
    assert main(["info", "dataset:examples/data/nope.jsonl"]) == 2
    assert "no such dataset file" in capsys.readouterr().err


def test_importing_rlenv_imports_no_dataset_library():
    script = (
        "import sys, rlenv; print(sorted({'datasets', 'pyarrow', 'pandas'} & set(sys.modules)))"
    )
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert child.stdout.strip() == "[]", child.stderr
