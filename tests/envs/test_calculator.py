"""Calculator-v0: the tools compute exactly and safely; the boxed answer is checked."""

from __future__ import annotations

import ast
import inspect
import json
from fractions import Fraction

import pytest

import rlenv
from rlenv.envs.tools import calculator
from rlenv.envs.tools.calculator import calculate, convert
from rlenv.tools import Toolbox
from rlenv.verifiers.math import exact_value


def test_calculate_is_exact_and_never_evaluates_code():
    box = Toolbox([calculate, convert])
    assert box.run("calculate", {"expression": "48213 * 9377 - 123"}).content == str(
        48213 * 9377 - 123
    )
    assert box.run("calculate", {"expression": "1/3 + 1/6"}).content.startswith("1/2")
    assert box.run("calculate", {"expression": "2^10"}).content == "1024"
    for hostile in ["__import__('os').system('true')", "1/0", "9^{9^{9^9}}", "x" * 600, "(" * 200]:
        outcome = box.run("calculate", {"expression": hostile})
        assert not outcome.ok and outcome.content.startswith("Error:")


def test_convert_units_of_the_same_kind_only():
    box = Toolbox([convert])
    assert box.run("convert", {"value": 1, "from_unit": "km", "to_unit": "m"}).content == "1000"
    assert (
        "cannot convert length to mass"
        in box.run("convert", {"value": 1, "from_unit": "km", "to_unit": "kg"}).content
    )
    assert (
        "unknown unit"
        in box.run("convert", {"value": 1, "from_unit": "furlong", "to_unit": "m"}).content
    )


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_gold_play_earns_full_reward_and_guessing_does_not(difficulty):
    env = rlenv.make("rlenv/Calculator-v0", difficulty=difficulty)
    for seed in range(5):
        env.reset(seed=seed)
        env.step(env.gold_action())
        _, reward, terminated, _, _ = env.step(env.gold_action())
        assert terminated and reward == 1.0
        env.reset(seed=seed)
        _, reward, terminated, _, info = env.step("I estimate \\boxed{12345}.")
        assert terminated and reward == 0.0


def test_tool_results_are_in_the_transcript():
    env = rlenv.make("rlenv/Calculator-v0", difficulty=1)
    obs, info = env.reset(seed=1)
    assert obs[0]["role"] == "system" and {t["function"]["name"] for t in info["tools"]} == {
        "calculate",
        "convert",
    }
    obs, *_ = env.step(env.gold_action())
    assert obs[-2]["tool_calls"][0]["function"]["name"] == "calculate"
    assert obs[-1]["role"] == "tool" and json.loads(obs[-1]["content"]) == int(env.task.answer)


def test_the_calculator_uses_only_public_verifier_functions():
    tree = ast.parse(inspect.getsource(calculator))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module.startswith("rlenv"):
            assert not any(part.startswith("_") for part in node.module.split(".")), node.module
            private = [alias.name for alias in node.names if alias.name.startswith("_")]
            assert not private, f"{node.module} imports private {private}"


def test_exact_value_is_exact_and_says_what_it_cannot_do():
    assert exact_value("(48213 * 9377 - 123) / 7") == Fraction(48213 * 9377 - 123, 7)
    assert exact_value("\\frac{1}{3} + 1/6") == Fraction(1, 2)
    assert exact_value("2^{10} - 3 \\times 4") == 1012
    assert exact_value("0.1 + 0.2") == Fraction(3, 10)  # no floating point
    with pytest.raises(ValueError, match="cannot read the expression"):
        exact_value("(((")
    for not_arithmetic in ["x + 1", "\\sqrt{2}", "2^{1/2}", "1/0", "9^{9^{9^9}}"]:
        with pytest.raises(ValueError, match="not exact arithmetic on numbers"):
            exact_value(not_arithmetic)
