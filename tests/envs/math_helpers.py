"""Helpers for the math environment tests: an independent LaTeX reader and a fresh process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import sympy
from sympy.parsing.sympy_parser import (
    implicit_multiplication_application,
    parse_expr,
    standard_transformations,
)

X, Y = sympy.symbols("x y")
_TRANSFORMS = (*standard_transformations, implicit_multiplication_application)


def to_sympy(latex: str) -> sympy.Expr:
    """The LaTeX the math envs write (``\\frac``, ``\\times``, ``\\div``, ``^{n}``, implicit
    products) as an exact sympy expression: an independent check of their own arithmetic."""
    text = latex.replace("$", "").replace("\\times", "*").replace("\\div", "/")
    text = re.sub(r"\^\{(\d+)\}", r"**\1", text)
    while "\\frac" in text:
        text = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"((\1)/(\2))", text)
    return parse_expr(text, local_dict={"x": X, "y": Y}, transformations=_TRANSFORMS)


_CHILD = """
import json, sys, rlenv
env = rlenv.make(sys.argv[1], **json.loads(sys.argv[2]))
out = []
for seed in json.loads(sys.argv[3]):
    observation, info = env.reset(seed=seed)
    out.append([info["task_id"], observation, env.task.answer])
print(json.dumps(out))
"""


def tasks_in_fresh_process(env_id: str, kwargs: dict, seeds: list[int]) -> list:
    """``[task_id, observation, answer]`` per seed, from a new interpreter with another hash seed."""
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, env_id, json.dumps(kwargs), json.dumps(seeds)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        timeout=120,
    )
    return json.loads(result.stdout)


def tasks_here(env, seeds: list[int]) -> list:
    out = []
    for seed in seeds:
        observation, info = env.reset(seed=seed)
        out.append([info["task_id"], observation, env.task.answer])
    return json.loads(json.dumps(out))
