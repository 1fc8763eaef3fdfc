"""``rlenv eval`` / ``rlenv collect`` killed mid-run (SIGKILL) and resumed with ``--resume``:
no duplicated or missing episode, no torn line, the seeds of an unbroken run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_openai_policy import FakeServer

from rlenv.cli import main
from rlenv.episode_log import EpisodeLog, ResumeError
from rlenv.rollout import episodes, read_trajectories

ROOT = Path(__file__).resolve().parents[2]
ENV = "rlenv/Arithmetic-v0"


def _seeded_answer(body):
    """Right when the request's sampling seed is even: rewards depend on the seeds, so a resumed
    run that gave an episode another seed than an unbroken run would score differently."""
    a, op, b = body["messages"][-1]["content"].split("$")[1].split()
    value = {"+": int(a) + int(b), "-": int(a) - int(b), "\\times": int(a) * int(b)}[op]
    return {"content": f"\\boxed{{{value if body['seed'] % 2 == 0 else value + 1}}}"}


@pytest.fixture
def server():
    server = FakeServer()
    server.reply = _seeded_answer
    yield server
    server.close()


def _command(kind: str, server: FakeServer, out: Path) -> list[str]:
    args = [kind, ENV, "--model", "tiny", "--base-url", server.url, "-n", "8", "--samples", "2",
            "--batch-size", "1", "--seed", "5", "--out", str(out)]  # fmt: skip
    return args + (["--temperature", "1.0"] if kind == "eval" else [])


def _output(kind: str, out: Path) -> Path:
    return out / "trajectories.jsonl" if kind == "eval" else out


def _kill_midway(args: list[str], output: Path, server: FakeServer, lines: int) -> None:
    """Start the real command in a subprocess and SIGKILL it once ``lines`` are written."""
    server.delay = 0.05
    process = subprocess.Popen(
        [sys.executable, "-m", "rlenv.cli", *args],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if output.exists() and output.read_bytes().count(b"\n") >= lines:
                break
            time.sleep(0.01)
        assert process.poll() is None, "the run ended before it could be killed"
        process.send_signal(signal.SIGKILL)
        assert process.wait(10) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
    server.delay = 0.0


@pytest.mark.parametrize("kind", ["eval", "collect"])
def test_a_killed_run_resumes_to_the_file_of_an_unbroken_run(kind, server, tmp_path, capsys):
    unbroken = tmp_path / "unbroken"
    assert main(_command(kind, server, unbroken)) == 0
    expected = _output(kind, unbroken).read_bytes()
    rows = [json.loads(line) for line in expected.splitlines()]
    if kind == "eval":  # seeds matter: some episodes pass, some fail
        assert len(rows) == 16 and 0 < sum(row["reward"] for row in rows) < 16
    else:  # --keep passed: only the passed ones, the others in FILE.skipped
        assert 0 < len(rows) < 16 and all(row["reward"] == 1.0 for row in rows)

    killed = tmp_path / "killed"
    _kill_midway(_command(kind, server, killed), _output(kind, killed), server, lines=3)
    output = _output(kind, killed)
    written = output.read_bytes()
    assert written.endswith(b"\n") and 3 <= written.count(b"\n") < len(rows)
    skipped = tmp_path / "killed.skipped"
    played_before = written.count(b"\n") + (
        len(skipped.read_text().splitlines()) if skipped.exists() else 0
    )
    # A kill during a write: the first half of a line, no newline.
    first = written.splitlines()[0]
    with output.open("ab") as handle:
        handle.write(first[: len(first) // 2])

    server.requests.clear()
    capsys.readouterr()
    assert main([*_command(kind, server, killed), "--resume"]) == 0
    err = capsys.readouterr().err
    assert "dropped a torn last line" in err and "resuming:" in err
    assert _output(kind, killed).read_bytes() == expected  # same episodes, order, rewards
    # Only the missing episodes were played again: one request each (single-turn env).
    assert len(server.requests) == 16 - played_before

    # Resuming a finished run plays nothing and keeps the file.
    server.requests.clear()
    assert main([*_command(kind, server, killed), "--resume"]) == 0
    assert server.requests == [] and _output(kind, killed).read_bytes() == expected


def test_existing_output_and_changed_settings_are_refused(server, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_command("eval", server, out)) == 0
    before = (out / "trajectories.jsonl").read_bytes()
    capsys.readouterr()
    assert main(_command("eval", server, out)) == 2  # not silently overwritten
    err = capsys.readouterr().err
    assert "--resume" in err and "--force" in err
    changed = [*_command("eval", server, out), "--resume", "--seed", "6", "-k", "difficulty=2"]
    assert main(changed) == 2
    err = capsys.readouterr().err
    assert "seed 5 -> 6" in err and 'env_kwargs {} -> {"difficulty": 2}' in err
    assert main([*_command("eval", server, out), "--resume", "--force"]) == 2
    assert (out / "trajectories.jsonl").read_bytes() == before
    assert main([*_command("eval", server, out), "--force", "-n", "3"]) == 0
    assert len(list(read_trajectories(out / "trajectories.jsonl"))) == 6


def test_damage_a_kill_cannot_make_is_refused_not_guessed(tmp_path):
    specs = episodes(ENV, n_tasks=2)
    path = tmp_path / "t.jsonl"
    log = EpisodeLog(path, {"x": 1}, specs)
    from rlenv.rollout import ScriptedPolicy, rollout

    for trajectory in rollout(ScriptedPolicy(answers=["\\boxed{1}"]), specs):
        log.record(trajectory)
    log.close()
    lines = path.read_text().splitlines()
    path.write_text(lines[0] + "\n" + lines[0] + "\n")  # one episode twice
    with pytest.raises(ResumeError, match="recorded twice"):
        EpisodeLog(path, {"x": 1}, specs, resume=True)
    path.write_text(lines[0][:20] + "\n" + lines[1] + "\n")  # a bad line before the last
    with pytest.raises(ResumeError, match="not the last line"):
        EpisodeLog(path, {"x": 1}, specs, resume=True)
    path.write_text(lines[0] + "\n")
    other = episodes(ENV, n_tasks=2, seed=9)
    with pytest.raises(ResumeError, match="not one of this run's"):
        EpisodeLog(path, {"x": 1}, other, resume=True)
    os.remove(path.with_name("t.jsonl.run.json"))
    with pytest.raises(ResumeError, match="--force"):
        EpisodeLog(path, {"x": 1}, specs, resume=True)


def test_episodes_whose_served_env_failed_at_reset_are_played_again_on_resume(tmp_path):
    """A ``reset_failed`` episode (the server was down, not the policy's doing) counts as not
    played: ``--resume`` plays it again, and the finished file holds only real episodes, in run
    order, as an unbroken run with the server up writes it."""
    from rlenv.remote import ServerUnreachableError
    from rlenv.rollout import ScriptedPolicy, rollout
    from rlenv.rollout.collector import _reset_failed

    specs = episodes(ENV, n_tasks=4)
    policy = ScriptedPolicy(answers=["\\boxed{1}"])
    played = rollout(policy, specs)
    gone = ServerUnreachableError("POST http://127.0.0.1:9/sessions failed: refused")
    failed = {1: _reset_failed(specs[1], policy, [gone, gone]),
              3: _reset_failed(specs[3], policy, [gone, gone])}  # fmt: skip
    unbroken = tmp_path / "unbroken.jsonl"
    log = EpisodeLog(unbroken, {"x": 1}, specs)
    for trajectory in played:
        log.record(trajectory)
    log.finish()

    path = tmp_path / "t.jsonl"
    log = EpisodeLog(path, {"x": 1}, specs)
    for position, trajectory in enumerate(played):
        log.record(failed.get(position, trajectory))
    log.close()  # the run ends (or is killed) with two episodes that never started
    for _ in range(2):  # a resume that writes nothing keeps them to play again
        log = EpisodeLog(path, {"x": 1}, specs, resume=True)
        assert [position for position, _ in log.remaining] == [1, 3]
        assert any("2 episode(s) whose served env failed at reset" in n for n in log.notes)
        log.close()
    assert path.read_text().count('"reset_failed"') == 2  # untouched until a new episode
    for position, spec in log.remaining:
        log.record(rollout(policy, [spec], positions=[position])[0])
        assert '"reset_failed"' not in path.read_text()  # dropped when the first is written
    assert log.finish() == list(read_trajectories(unbroken))
    assert path.read_bytes() == unbroken.read_bytes()

    # collect --keep passed: a reset failure is not kept, and FILE.skipped marks it
    path = tmp_path / "k.jsonl"
    log = EpisodeLog(path, {"x": 1}, specs)
    for position, trajectory in enumerate(played):
        log.record(failed.get(position, trajectory), keep=position not in failed)
    log.close()
    log = EpisodeLog(path, {"x": 1}, specs, resume=True)
    assert [position for position, _ in log.remaining] == [1, 3]
    for position, spec in log.remaining:
        log.record(rollout(policy, [spec], positions=[position])[0], keep=False)
    log.finish()
    skipped = [
        json.loads(line) for line in path.with_name("k.jsonl.skipped").read_text().splitlines()
    ]
    assert len(skipped) == 2 and not any("reset_failed" in line for line in skipped)
