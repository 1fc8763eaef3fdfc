"""BFCL and Bank take ``parser=`` for every registered tool-call format, and their verdicts do not
depend on the format the calls are written in (issue 17): the gold, and a gold with one value
changed, are rendered in each format and must score exactly as they do in Hermes's."""

from __future__ import annotations

import pytest

import rlenv
from rlenv.tools import ParsedCall, get_parser, list_parsers

# Every registered format but ``auto``, which renders Hermes's.
FORMATS = [name for name in list_parsers() if name != "auto"]


def _changed(calls: list[ParsedCall]) -> list[ParsedCall]:
    """The calls with the first argument of the first call given a value no answer accepts."""
    first = calls[0]
    if not first.arguments:
        return [ParsedCall(first.name + "_x", {}), *calls[1:]]
    key = sorted(first.arguments)[0]
    return [ParsedCall(first.name, {**first.arguments, key: "no such value 1234"}), *calls[1:]]


def _scores(env_id: str, parser: str, seeds: range) -> list[tuple[float, float]]:
    env = rlenv.make(env_id, parser=parser)
    fmt = get_parser(parser)
    scores = []
    for seed in seeds:
        _, info = env.reset(seed=seed)
        gold = env.unwrapped.gold_action()
        calls = fmt.parse(gold, tools=info["tools"]).calls if fmt.name != "auto" else []
        assert calls, f"{parser}: the gold it rendered did not parse back ({gold!r})"
        gold_reward = env.step(gold)[1]
        env.reset(seed=seed)
        wrong_reward = env.step(fmt.render(_changed(calls)))[1]
        scores.append((gold_reward, wrong_reward))
    return scores


@pytest.mark.parametrize("category", ["Simple", "Multiple", "Parallel", "ParallelMultiple"])
def test_bfcl_verdicts_do_not_depend_on_the_format(category):
    env_id = f"rlenv/BFCL-{category}-v0"
    expected = _scores(env_id, "hermes", range(6))
    assert expected == [(1.0, 0.0)] * 6
    differ = {
        parser: scores
        for parser in FORMATS
        if (scores := _scores(env_id, parser, range(6))) != expected
    }
    assert not differ, f"verdicts differ from Hermes's: {differ}"


def test_bank_plays_its_gold_plan_in_every_format():
    for parser in FORMATS:
        env = rlenv.make("rlenv/Bank-v0", parser=parser)
        env.reset(seed=3)
        reward, done, turns = 0.0, False, 0
        while not done and turns < 20:
            _, reward, terminated, truncated, _ = env.step(env.unwrapped.gold_action())
            done, turns = terminated or truncated, turns + 1
        assert (reward, done) == (1.0, True), f"{parser}: the gold plan scored {reward}"
