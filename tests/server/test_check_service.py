"""``rlenv check`` against a running ``rlenv serve``: the conformance suite over the wire, and
its JSON report for CI."""

from __future__ import annotations

import json
import random

import pytest
from server_helpers import _tasks

import rlenv
from rlenv import TextEnv, Verdict
from rlenv.cli import main
from rlenv.server import serve_in_thread
from rlenv.testing import check_service, check_targets, register_check_scheme

ARITHMETIC = "rlenv/Arithmetic-v0"
DRIFTING = "rlenvtest/Drifting-v0"


class Drifting(TextEnv):
    """Poses a different task on every reset, whatever the seed: breaks reset determinism."""

    max_turns = 2

    def load_tasks(self):
        return _tasks()

    def verify(self, task, completion):
        return Verdict(reward=0.0)

    def reset(self, *, seed=None, options=None):
        return super().reset(seed=random.randrange(10**6), options=None)


@pytest.fixture(scope="module")
def service():
    rlenv.register(DRIFTING, Drifting)
    try:
        with serve_in_thread([ARITHMETIC, DRIFTING]) as url:
            yield url
    finally:
        rlenv.unregister(DRIFTING)


def _report(path):
    return json.loads(path.read_text())


def test_a_served_env_passes_over_the_wire_with_a_json_report(service, tmp_path, capsys):
    path = tmp_path / "ci" / "check.json"
    assert main(["check", f"{service}/{ARITHMETIC}", "--actions", "30", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{ARITHMETIC} at {service}: passed, 2 checks skipped" in out
    document = _report(path)
    assert document["passed"] is True and len(document["environments"]) == 1
    env = document["environments"][0]
    statuses = {check["name"]: check["status"] for check in env["checks"]}
    assert statuses == {
        "gymnasium check_env": "pass",
        "reset determinism": "pass",
        "step determinism": "pass",
        "cross-process determinism": "skip",
        "hostile actions": "pass",
        "finished episode": "pass",
        "gold answer": "skip",
    }
    skipped = {c["name"]: c["detail"] for c in env["checks"] if c["status"] == "skip"}
    assert "the service runs elsewhere" in skipped["cross-process determinism"]
    assert "not exposed over the wire" in skipped["gold answer"]


def test_a_broken_served_env_fails_and_the_report_says_which_check(service, tmp_path, capsys):
    path = tmp_path / "check.json"
    code = main(["check", "--url", service, "--actions", "10", "--json", str(path)])  # all served
    assert code == 1
    document = _report(path)
    assert document["passed"] is False
    by_env = {env["env"].split(" at ")[0]: env for env in document["environments"]}
    assert set(by_env) == {ARITHMETIC, DRIFTING}
    assert by_env[ARITHMETIC]["passed"] and not by_env[DRIFTING]["passed"]
    failed = [c for c in by_env[DRIFTING]["checks"] if c["status"] == "fail"]
    details = {c["name"]: c["detail"] for c in failed}
    assert set(details) == {"gymnasium check_env", "reset determinism", "step determinism"}
    assert "posed different tasks" in details["reset determinism"]
    assert "1 failed" in capsys.readouterr().out


def test_unreachable_or_unknown_services_fail_clearly(service, tmp_path, capsys):
    path = tmp_path / "check.json"
    assert main(["check", "http://127.0.0.1:1/rlenv/Arithmetic-v0", "--json", str(path)]) == 1
    check = _report(path)["environments"][0]["checks"][0]
    assert check["status"] == "fail" and "cannot be reached" in check["detail"]
    assert main(["check", f"{service}/rlenv/Nope-v0"]) == 1
    assert "no rlenv server there serves rlenv/Nope-v0" in capsys.readouterr().out
    assert main(["check", "gopher://127.0.0.1:1/echo"]) == 2  # a scheme nobody registered
    assert "register_check_scheme" in capsys.readouterr().err
    assert main(["check", "--url", service, "--all"]) == 2


def test_any_textenv_factory_is_checked_through_a_scheme(service):
    """How a bridge plugs in (the OpenEnv wrapper: ``openenv+http://``): a scheme whose opener
    returns (name, factory) pairs; here a factory of local TextEnvs and one of the server."""
    register_check_scheme(
        "rlenvtest-local", lambda target: [(target, lambda: rlenv.make(ARITHMETIC))]
    )
    (report,) = check_service("rlenvtest-local://arith", n_actions=10)
    assert report.passed and report.env_name == "rlenvtest-local://arith"
    assert [name for name, _ in check_targets(service)] == [
        f"{ARITHMETIC} at {service}",
        f"{DRIFTING} at {service}",
    ]
    with pytest.raises(ValueError, match="before '://'"):
        register_check_scheme("x://", lambda target: [])
