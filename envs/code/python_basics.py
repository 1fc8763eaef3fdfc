"""``rlenv/PythonBasics-v0`` and ``rlenv/PythonBasicsFeedback-v0``: the team's own problem set.

Functions (checked by hidden ``assert`` tests) and stdin/stdout programs (checked by hidden
cases), from ``envs/code/data/python_basics.jsonl``; see ``envs/code/data/README.md``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from rlenv import Task, TaskList, TextEnv, Turn, Verdict
from rlenv.chat import AssistantMessage, message_text
from rlenv.retry import Retry
from rlenv.verifiers.code import CodeResult, extract_code, run_io, run_tests
from rlenv.verifiers.code.verdicts import INSTRUCTION, feedback, no_code_verdict, verdict_from

DATA = Path(__file__).parent / "data" / "python_basics.jsonl"


@lru_cache(maxsize=1)
def load_problems() -> tuple[dict, ...]:
    """The bundled problems, in file order."""
    with DATA.open(encoding="utf-8") as handle:
        return tuple(json.loads(line) for line in handle if line.strip())


class PythonBasics(TextEnv):
    """Write a Python function or program; hidden tests in the sandbox decide.

    ``difficulty`` (1, 2 or 3; default all) keeps problems of that level. Reward: 1.0 when every
    test passes; with ``partial_reward=True``, the fraction of tests passed.
    """

    def __init__(
        self,
        *,
        difficulty: int | None = None,
        partial_reward: bool = False,
        timeout: float = 5.0,
        **kwargs,
    ) -> None:
        if difficulty not in (None, 1, 2, 3):
            raise ValueError(f"difficulty must be 1, 2, 3 or None, got {difficulty!r}")
        self.difficulty = difficulty
        self.partial_reward = partial_reward
        self.timeout = timeout
        super().__init__(**kwargs)

    def load_tasks(self) -> TaskList:
        problems = [p for p in load_problems() if self.difficulty in (None, p.get("difficulty"))]
        return TaskList(
            Task(id=p["id"], prompt=f"{p['prompt'].rstrip()}\n\n{INSTRUCTION}", metadata=p)
            for p in problems
        )

    def run(self, task: Task, code: str) -> CodeResult:
        problem = task.metadata
        if problem["kind"] == "io":
            return run_io(code, problem["cases"], timeout=self.timeout, partial=self.partial_reward)
        return run_tests(
            code,
            problem["tests"],
            entry_point=problem["entry_point"],
            timeout=self.timeout,
            partial=self.partial_reward,
        )

    def verify(self, task: Task, completion: str) -> Verdict:
        code = extract_code(completion)
        if code is None:
            return no_code_verdict()
        return verdict_from(self.run(task, code), code)

    def gold_action(self) -> str:
        return f"```python\n{self.task.metadata['solution'].rstrip()}\n```"


class PythonBasicsFeedback(PythonBasics):
    """PythonBasics over several turns: after a failed attempt the model sees how it failed
    (the first failing test and its error, at most 800 characters; never the other hidden
    tests) and may reply with fixed code.

    Reward on success: ``decay ** (attempt - 1)`` (1.0, 0.5, 0.25 by default); 0 if no attempt
    passes within ``max_turns`` (default 3), which truncates the episode. The retry rule is
    :class:`rlenv.retry.Retry`'s.
    """

    max_turns = 3

    def __init__(self, *, decay: float = 0.5, **kwargs) -> None:
        self.retry = Retry(decay)
        super().__init__(**kwargs)

    def respond(self, message: AssistantMessage) -> Turn:
        code = extract_code(message_text(message))
        if code is None:
            return self.retry.turn(
                no_code_verdict(),
                attempt=self.turn,
                solved=False,
                feedback=f"No code found. {INSTRUCTION}",
            )
        result = self.run(self.task, code)
        return self.retry.turn(
            verdict_from(result, code),  # all tests passed: reward 1.0, even with partial_reward
            attempt=self.turn,
            solved=result.passed,
            feedback=feedback(result),
            reason=f"all tests passed on attempt {self.turn}",
        )
