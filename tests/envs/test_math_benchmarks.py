"""rlenv/GSM8K-v0, MATH500-v0, AIME24-v0, AIME25-v0 on their bundled samples (no hub here).

The benchmark's own answer rule is implemented here from its published definition and compared
with our ``math`` verifier on the sample gold and on perturbed answers:

- GSM8K: github.com/openai/grade-school-math, ``grade_school_math/dataset.py``:
  ``ANS_RE = re.compile(r"#### (\\-?[0-9\\.\\,]+)")``, ``extract_answer`` strips commas,
  ``is_correct`` compares the completion's extracted answer with the reference's.
- MATH-500: ``math-verify`` is not installed in .venv, so the MATH paper's rule
  (github.com/hendrycks/math, ``modeling/math_equivalence.py``: ``is_equiv`` compares the
  ``strip_string`` normalisations of the last ``\\boxed{}`` and the reference).
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from pathlib import Path

import pytest

import rlenv
from rlenv.datasets import DatasetUnavailableError
from rlenv.envs.math import benchmarks
from rlenv.envs.math.benchmarks import AIME24, AIME25, GSM8K, MATH500, SAMPLE_ENV_VAR
from rlenv.testing import check_env

DATA = Path(benchmarks.__file__).resolve().parent / "data"
IDS = ["rlenv/GSM8K-v0", "rlenv/MATH500-v0", "rlenv/AIME24-v0", "rlenv/AIME25-v0"]
CLASSES = {GSM8K: "gsm8k", MATH500: "math500", AIME24: "aime24", AIME25: "aime25"}


def rows(name: str) -> list[dict]:
    lines = (DATA / f"{name}_sample.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def all_tasks(env) -> list:
    return list(env.task_source)


def question_of(task) -> str:
    return task.metadata.get("question") or task.metadata["problem"]


def reward(env, task, reply: str) -> float:
    verdict = env.verify(task, reply)
    return float(getattr(verdict, "reward", verdict))


@pytest.fixture(autouse=True)
def _sample_only(monkeypatch):
    monkeypatch.setenv(SAMPLE_ENV_VAR, "1")


# ----------------------------------------------------------------------------- reference rules

GSM_ANS_RE = re.compile(r"#### (\-?[0-9\.\,]+)")
GSM_INVALID = "[invalid]"


def gsm_extract(text: str) -> str:
    match = GSM_ANS_RE.search(text)
    return match.group(1).strip().replace(",", "") if match else GSM_INVALID


def gsm_is_correct(completion: str, reference: str) -> bool:
    gold = gsm_extract(reference)
    assert gold != GSM_INVALID, "no gold answer in the reference"
    return gsm_extract(completion) == gold


def _fix_fracs(string: str) -> str:
    substrs = string.split("\\frac")
    new_str = substrs[0]
    for substr in substrs[1:]:
        new_str += "\\frac"
        if substr and substr[0] == "{":
            new_str += substr
            continue
        if len(substr) < 2:
            return string
        a, b = substr[0], substr[1]
        if b != "{":
            new_str += "{" + a + "}{" + b + "}" + substr[2:]
        else:
            new_str += "{" + a + "}" + b + substr[2:]
    return new_str


def _fix_a_slash_b(string: str) -> str:
    if len(string.split("/")) != 2:
        return string
    a, b = string.split("/")
    try:
        a_int, b_int = int(a), int(b)
    except ValueError:
        return string
    return (
        "\\frac{" + str(a_int) + "}{" + str(b_int) + "}" if string == f"{a_int}/{b_int}" else string
    )


def _remove_right_units(string: str) -> str:
    return string.split("\\text{ ")[0] if "\\text{ " in string else string


def _fix_sqrt(string: str) -> str:
    if "\\sqrt" not in string:
        return string
    splits = string.split("\\sqrt")
    new_string = splits[0]
    for split in splits[1:]:
        if split and split[0] != "{":
            new_string += "\\sqrt{" + split[0] + "}" + split[1:]
        else:
            new_string += "\\sqrt" + split
    return new_string


def math_strip_string(string: str) -> str:
    """hendrycks/math ``strip_string``, step by step."""
    string = string.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    string = string.replace("tfrac", "frac").replace("dfrac", "frac")
    string = string.replace("\\left", "").replace("\\right", "")
    string = string.replace("^{\\circ}", "").replace("^\\circ", "")
    string = string.replace("\\$", "")
    string = _remove_right_units(string)
    string = string.replace("\\%", "").replace("%", "")
    string = string.replace(" .", " 0.").replace("{.", "{0.")
    if not string:
        return string
    if string[0] == ".":
        string = "0" + string
    if len(string.split("=")) == 2 and len(string.split("=")[0]) <= 2:
        string = string.split("=")[1]
    string = _fix_sqrt(string)
    string = string.replace(" ", "")
    string = _fix_fracs(string)
    if string == "0.5":
        string = "\\frac{1}{2}"
    return _fix_a_slash_b(string)


def last_boxed(text: str) -> str | None:
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, index = 0, start + len("\\boxed")
    for position in range(index, len(text)):
        if text[position] == "{":
            depth += 1
        elif text[position] == "}":
            depth -= 1
            if depth == 0:
                return text[index + 1 : position]
    return None


def math_is_equiv(completion: str, reference: str) -> bool:
    answer = last_boxed(completion)
    if answer is None:
        return False
    return math_strip_string(answer) == math_strip_string(reference)


# ----------------------------------------------------------------------------- perturbations


def numeric_perturbations(gold: int | float, question: str) -> list[str]:
    """Wrong numbers a policy might give: off by one, the wrong sign, another unit's scale, a
    number copied out of the question."""
    values = [gold + 1, gold - 1, gold * 100, gold * 1000]
    if gold != 0:
        values.append(-gold)
    for number in re.findall(r"\d+(?:\.\d+)?", question.replace(",", "")):
        if float(number) != gold:
            values.append(float(number) if "." in number else int(number))
            break
    return [f"{v:g}" if isinstance(v, float) else str(v) for v in values]


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("env_id", IDS)
def test_each_benchmark_passes_check_env(env_id):
    report = check_env(env_id)
    assert report.passed and not report.failures


@pytest.mark.parametrize("cls", list(CLASSES))
def test_gold_scores_one_on_every_sample_row_and_schema_is_the_hubs(cls):
    env = cls(sample=True)
    env.reset(seed=0)
    assert len(all_tasks(env)) == len(rows(CLASSES[cls]))
    expected_columns = {
        GSM8K: {"question", "answer"},
        MATH500: {"problem", "solution", "answer", "subject", "level", "unique_id"},
        AIME24: {"id", "problem", "solution", "answer", "url", "year"},
        AIME25: {"question", "answer"},
    }[cls]
    for row in rows(CLASSES[cls]):
        assert set(row) == expected_columns
    for task in all_tasks(env):
        env._task = task  # the gold action of each task in turn
        gold = env.gold_action()
        assert gold and reward(env, task, gold) == 1.0, task.id


@pytest.mark.parametrize("cls", [GSM8K, AIME24, AIME25])
def test_perturbed_numbers_score_zero(cls):
    env = cls(sample=True)
    env.reset(seed=0)
    for task in all_tasks(env):
        gold = int(gsm_extract(task.answer)) if cls is GSM8K else int(task.answer)
        for wrong in numeric_perturbations(gold, question_of(task)):
            for reply in (f"The answer is \\boxed{{{wrong}}}.", f"So:\n#### {wrong}"):
                assert reward(env, task, reply) == 0.0, (task.answer[-20:], reply)


def test_gsm8k_verifier_agrees_with_the_reference_rule():
    env = GSM8K(sample=True)
    env.reset(seed=0)
    checked = 0
    for task in all_tasks(env):
        gold = gsm_extract(task.answer)
        replies = [f"Work.\n#### {gold}", f"#### {int(gold):,}"]
        replies += [f"Work.\n#### {w}" for w in numeric_perturbations(int(gold), question_of(task))]
        # the '####' line copied from the question: its first number, not the answer
        first = re.findall(r"\d+", question_of(task).replace(",", ""))[0]
        if first != gold:
            replies.append(f"{question_of(task)}\n#### {first}")
        for reply in replies:
            ours = reward(env, task, reply) == 1.0
            assert ours == gsm_is_correct(reply, task.answer), reply
            checked += 1
    assert checked >= 50


def test_math500_verifier_agrees_with_the_math_paper_rule():
    env = MATH500(sample=True)
    env.reset(seed=0)
    for task in all_tasks(env):
        gold = task.answer
        right = [f"Thus \\boxed{{{gold}}}.", f"$\\boxed{{{gold.replace(' ', '')}}}$"]
        for reply in right:
            assert reward(env, task, reply) == 1.0 and math_is_equiv(reply, gold), reply
        wrong = [
            f"\\boxed{{{gold}+1}}",
            f"\\boxed{{-{gold}}}" if not gold.startswith("-") else "\\boxed{0}",
        ]
        if gold.isdigit():
            wrong += [
                f"\\boxed{{{int(gold) + 1}}}",
                f"\\boxed{{{int(gold) - 1}}}",
                f"\\boxed{{{int(gold) * 100}}}",
            ]
        wrong.append("\\boxed{" + gold + "}, \\boxed{" + gold + "+1}")  # the last box answers
        for reply in wrong:
            assert reward(env, task, reply) == 0.0, reply
            assert not math_is_equiv(reply, gold), reply


def test_math500_equivalent_forms_the_paper_rule_also_accepts():
    env = MATH500(sample=True)
    env.reset(seed=0)
    by_answer = {t.answer: t for t in all_tasks(env)}
    task = by_answer["\\frac{14}{3}"]
    for reply in ("\\boxed{\\dfrac{14}{3}}", "\\boxed{14/3}"):
        assert math_is_equiv(reply, task.answer)
        assert reward(env, task, reply) == 1.0, reply
    task = by_answer["\\left( 3, \\frac{\\pi}{2} \\right)"]
    for reply in ("\\boxed{(3, \\frac{\\pi}{2})}", "\\boxed{(3,\\frac{\\pi}{2})}"):
        assert math_is_equiv(reply, task.answer)
        assert reward(env, task, reply) == 1.0, reply
    assert reward(env, task, "\\boxed{(3, \\pi)}") == 0.0
    assert reward(env, task, "\\boxed{(-3, \\frac{\\pi}{2})}") == 0.0


def test_hostile_replies_score_zero_and_never_raise():
    for cls in CLASSES:
        env = cls(sample=True)
        env.reset(seed=0)
        for task in all_tasks(env):
            for reply in ("", "\\boxed{", "#### ", "x" * 20000, "\\boxed{\\boxed{}}", "NaN"):
                assert reward(env, task, reply) == 0.0


def test_provenance_says_sample_loudly_and_names_the_pinned_dataset():
    env = rlenv.make("rlenv/GSM8K-v0")
    env.reset(seed=0)
    p = env.provenance
    assert p["kind"] == "sample" and p["sample"] is True
    assert "NOT the benchmark" in p["warning"]
    assert p["name"] == "openai/gsm8k" and p["revision"] == GSM8K.revision
    assert len(p["revision"]) == 40 and p["configs"] == ["main"] and p["data_split"] == "test"


def test_default_falls_back_with_a_warning_when_the_hub_is_unreachable(monkeypatch, caplog):
    monkeypatch.delenv(SAMPLE_ENV_VAR)
    monkeypatch.setattr(benchmarks, "_hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(benchmarks, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="rlenv.benchmarks"):
        env = MATH500()
        env.reset(seed=0)
    assert "NOT the benchmark" in caplog.text
    assert env.provenance["sample"] is True and "unreachable" in env.provenance["warning"]


def test_hub_only_fails_offline_naming_the_dataset(monkeypatch):
    monkeypatch.setenv(SAMPLE_ENV_VAR, "0")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DatasetUnavailableError, match="HuggingFaceH4/aime_2024"):
        AIME24().reset(seed=0)


def test_bad_env_var_and_fixed_options_are_refused(monkeypatch):
    monkeypatch.setenv(SAMPLE_ENV_VAR, "maybe")
    with pytest.raises(rlenv.errors.RLEnvError, match=SAMPLE_ENV_VAR):
        GSM8K().reset(seed=0)
    with pytest.raises(rlenv.errors.RLEnvError, match="revision"):
        GSM8K(revision="main")


def test_rlenv_split_is_disjoint_on_the_sample():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train = {t.id for t in all_tasks(GSM8K(sample=True, split="train"))}
        test = {t.id for t in all_tasks(GSM8K(sample=True, split="test"))}
    assert not train & test and len(train | test) == len(rows("gsm8k"))
