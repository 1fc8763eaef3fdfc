"""The conformance suite passes on every registered env and catches each kind of breakage."""

from __future__ import annotations

import random

import pytest
from sample_envs import EchoWord

import rlenv
from rlenv import GeneratedTasks, Task, Turn
from rlenv.errors import ConformanceError
from rlenv.testing import check_env, conformance_test, hostile_actions


# Every registered id, the 99 reasoning-gym ones included (about 7 minutes of the run here:
# arc_agi, futoshiki and knight_swap take 45-80 s each; the full check found 6 datasets whose
# tasks depend on the hash seed, see rlenv.envs.reasoning_gym.HASH_DEPENDENT).
@pytest.fixture(params=rlenv.list_envs())
def registered_env_id(request) -> str:
    return request.param


def test_every_registered_env_passes_the_conformance_suite(registered_env_id):
    report = check_env(registered_env_id)
    assert report.passed and not report.failures
    assert {r.name for r in report.results if r.status == "pass"} >= {
        "gymnasium check_env",
        "hostile actions",
        "finished episode",
    }


def test_gymnasium_checker_passes_on_gymnasium_made_envs(registered_env_id):
    import gymnasium
    from gymnasium.utils.env_checker import check_env as gymnasium_check_env

    env = gymnasium.make(registered_env_id)
    gymnasium_check_env(env.unwrapped, skip_render_check=True)


def test_hostile_actions_include_the_promised_kinds():
    actions = hostile_actions(200, seed=0)
    assert len(actions) == 200
    assert "" in actions and any(len(a) >= 1_000_000 for a in actions)
    assert any("<tool_call>" in a for a in actions) and any(
        "Ignore all previous" in a for a in actions
    )
    assert any("\x00" in a for a in actions)


def _failed_checks(env) -> dict[str, str]:
    report = check_env(env, raise_on_failure=False, n_actions=60, seeds=(0, 1))
    return {r.name: r.detail for r in report.failures}


class _Nondeterministic(EchoWord):
    def load_tasks(self):
        return GeneratedTasks(lambda rng: Task(prompt=f"Repeat {random.random()}", answer="x"))


class _CrashesOnBraces(EchoWord):
    def verify(self, task, completion):
        if "{" in completion:
            raise ValueError("unbalanced")
        return completion == task.answer


class _WrongGold(EchoWord):
    def gold_action(self):
        return "definitely not it"


class _BadReply(EchoWord):
    max_turns = 3

    def respond(self, message):
        return Turn(messages=[{"role": "narrator", "content": "..."}])


class _HashDependent(EchoWord):
    def load_tasks(self):
        return GeneratedTasks(
            lambda rng: Task(prompt=f"Repeat {hash('salt') % 10_000}", answer="x")
        )


@pytest.mark.parametrize(
    ("env_class", "failing_check", "detail"),
    [
        (_Nondeterministic, "reset determinism", "different tasks"),
        (_CrashesOnBraces, "hostile actions", "could not score"),
        (_WrongGold, "gold answer", "earned 0.0"),
        (_BadReply, "hostile actions", "invalid messages"),
    ],
)
def test_conformance_catches_broken_envs(env_class, failing_check, detail):
    failures = _failed_checks(env_class())
    assert failing_check in failures, failures
    assert detail in failures[failing_check]


def test_cross_process_check_catches_hash_dependent_tasks():
    rlenv.register("rlenvtest/HashDependent-v0", _HashDependent)
    failures = _failed_checks(rlenv.make("rlenvtest/HashDependent-v0"))
    assert "cross-process determinism" in failures
    assert "reset determinism" not in failures  # in one process it looks deterministic


def test_check_env_raises_with_the_report_by_default():
    with pytest.raises(ConformanceError) as caught:
        check_env(_WrongGold(), n_actions=10, cross_process=False)
    assert "FAIL  gold answer" in str(caught.value)
    assert caught.value.report.passed is False


def test_report_is_readable():
    report = check_env(EchoWord(), n_actions=20)
    text = str(report)
    assert "PASS  hostile actions" in text
    # unregistered: no spec, so the cross-process check is skipped with a reason, and the
    # summary line says so: a skip is not a pass
    assert any(r.status == "skip" and "registered id" in r.detail for r in report.results)
    assert text.endswith(
        "EchoWord: passed, 1 check skipped: cross-process determinism "
        "(the environment has no registered id)"
    )


class MainDefined(EchoWord):
    pass


def test_a_class_defined_in_main_is_named_as_the_reason_its_check_skipped(monkeypatch):
    monkeypatch.setattr(MainDefined, "__module__", "__main__")
    rlenv.register("rlenvtest/MainDefined-v0", MainDefined)
    try:
        report = check_env("rlenvtest/MainDefined-v0", n_actions=5)
    finally:
        rlenv.unregister("rlenvtest/MainDefined-v0")
    summary = str(report).splitlines()[-1]
    assert "passed, 1 check skipped: cross-process determinism" in summary
    assert "defined in __main__" in summary and "move it into a module" in summary


test_pytest_helper = conformance_test("rlenvtest/Countdown-v0", n_actions=30)
