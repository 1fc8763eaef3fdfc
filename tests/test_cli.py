"""The ``rlenv`` command: every subcommand, through ``main`` and through a real process."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import pytest

import rlenv
from rlenv import cli
from rlenv.cli import main, parse_kwargs, play
from rlenv.envs.games.guess_number import binary_search_guess
from rlenv.errors import EnvArgumentError

ARITHMETIC = "rlenv/Arithmetic-v0"
GUESS_NUMBER = "rlenv/GuessNumber-v0"
BROKEN_ID = "rlenvtest/BrokenVerify-v0"


class BrokenVerify(rlenv.TextEnv):
    """A deliberately broken environment: its verifier raises on every reply."""

    def load_tasks(self) -> rlenv.GeneratedTasks:
        return rlenv.GeneratedTasks(lambda rng: rlenv.Task(prompt=f"Say {rng.randint(0, 9)}."))

    def verify(self, task: rlenv.Task, completion: str) -> rlenv.Verdict:
        raise RuntimeError("a verifier bug")


class BrokenRespond(rlenv.TextEnv):
    """Multi-turn, and its respond() raises: `rlenv play` must show the bug and go on."""

    max_turns = 3

    def load_tasks(self) -> rlenv.GeneratedTasks:
        return rlenv.GeneratedTasks(lambda rng: rlenv.Task(prompt="Say anything."))

    def respond(self, message):
        raise ZeroDivisionError("respond bug")


@pytest.fixture
def broken_env_id():
    rlenv.register(BROKEN_ID, BrokenVerify)
    yield BROKEN_ID
    # Unregister: other tests run the conformance suite on every registered environment.
    rlenv.unregister(BROKEN_ID)


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rlenv.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_python_dash_m_rlenv_is_the_rlenv_command():
    """`torchrun ... -m rlenv train` (docs/training.md) needs ``python -m rlenv`` to work."""
    result = subprocess.run(
        [sys.executable, "-m", "rlenv", "info", "rlenv/Arithmetic-v0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "rlenv/Arithmetic-v0" in result.stdout


def play_text(env: rlenv.TextEnv, text: str, *, seed: int = 0, color: bool | None = None) -> str:
    stdout = io.StringIO()
    assert play(env, seed=seed, stdin=io.StringIO(text), stdout=stdout, color=color) == 0
    return stdout.getvalue()


# ------------------------------------------------------------------------------ list, info


def test_list_shows_the_bundled_envs_with_max_turns_and_description(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert re.search(
        r"^rlenv/GuessNumber-v0\s+10\s+Guess a secret whole number", rows[GUESS_NUMBER]
    )
    assert re.search(r"^rlenv/Arithmetic-v0\s+1\s+Compute `a op b`", rows[ARITHMETIC])


def test_list_filters_by_namespace(capsys, broken_env_id):
    assert main(["list", "--namespace", "rlenvtest"]) == 0
    out = capsys.readouterr().out
    assert broken_env_id in out and "A deliberately broken environment" in out
    assert ARITHMETIC not in out
    assert main(["list", "--namespace", "no_such_namespace"]) == 0
    assert "no environments registered in namespace 'no_such_namespace'" in capsys.readouterr().out


def test_info_shows_the_spec_and_a_sample_task(capsys):
    env = rlenv.make(ARITHMETIC, digits=3)
    observation, info = env.reset(seed=3)

    assert main(["info", ARITHMETIC, "--seed", "3", "-k", "digits=3"]) == 0
    out = capsys.readouterr().out
    assert "rlenv.envs.math.arithmetic:Arithmetic" in out
    assert '"digits": 3' in out
    assert re.search(r"max_turns\s+1\n", out) and re.search(r"tools\s+0\n", out)
    assert "Reward 1.0 for the exact integer" in out  # the docstring
    assert f"sample task (seed 3): id {info['task_id']}" in out
    assert observation[0]["content"] in out
    assert f"reference answer: {env.task.answer}" in out
    assert f"gold action: {env.gold_action()}" in out


def test_kwargs_are_json_or_python_literals_and_strings_otherwise():
    pairs = ["digits=3", "flag=false", "xs=[1, 2]", "name=abc", 'quoted="3"', "eq=a=b", "empty="]
    pairs += ["py_false=False", "py_true=True", "py_none=None", "pair=(1, 2)", "single='x'"]
    assert parse_kwargs(pairs) == {
        "digits": 3,
        "flag": False,
        "xs": [1, 2],
        "name": "abc",
        "quoted": "3",
        "eq": "a=b",
        "empty": "",
        "py_false": False,
        "py_true": True,
        "py_none": None,
        "pair": (1, 2),
        "single": "x",
    }
    for bad in ("digits", "=3", "not-an-identifier=1"):
        with pytest.raises(EnvArgumentError, match="KEY=VALUE"):
            parse_kwargs([bad])


@pytest.mark.parametrize("value", ["False", "false"])
def test_python_false_on_the_command_line_means_false(value, capsys, monkeypatch):
    env = rlenv.make(ARITHMETIC)
    env.reset(seed=0)
    bare = str(env.task.answer)  # scores 0 when \boxed{} is required, 1 when it is not
    assert env.step(bare)[1] == 0.0
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{bare}\n/quit\n"))
    assert main(["play", ARITHMETIC, "-k", f"require_boxed={value}"]) == 0
    assert "reward 1.0   terminated True" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["info", "play", "eval", "collect", "train"])
def test_a_string_for_a_bool_is_refused_on_every_command(command, capsys):
    extra = {"eval": ["--model", "smollm2-135m"], "collect": ["--model", "smollm2-135m"]}
    argv = [command, ARITHMETIC, "-k", "require_boxed=yes", *extra.get(command, [])]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "parameter 'require_boxed' expects bool, got str 'yes'" in err
    assert "write True or False" in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["info", "play", "eval", "collect", "train"])
def test_a_misspelt_kwarg_names_the_close_match_on_every_command(command, capsys):
    extra = {"eval": ["--model", "smollm2-135m"], "collect": ["--model", "smollm2-135m"]}
    assert main([command, ARITHMETIC, "-k", "dificulty=2", *extra.get(command, [])]) == 2
    err = capsys.readouterr().err
    assert "has no parameter 'dificulty'. Did you mean 'difficulty'?" in err
    assert "require_boxed" in err and "TextEnv.__init__" not in err


def test_bad_kwargs_exit_2_with_the_reason(capsys):
    assert main(["info", ARITHMETIC, "-k", "digits=99"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rlenv: error: could not make rlenv/Arithmetic-v0")
    assert "digits must be between 1 and 12" in err
    assert main(["info", ARITHMETIC, "-k", "no_such_argument=1"]) == 2
    assert "no_such_argument" in capsys.readouterr().err
    assert main(["play", ARITHMETIC, "-k", "digits"]) == 2
    assert "-k expects KEY=VALUE" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["info", "play", "check"])
def test_unknown_env_id_exits_2_with_a_suggestion(capsys, command):
    assert main([command, "rlenv/Arithmetc-v0"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no text environment is registered as 'rlenv/Arithmetc-v0'" in captured.err
    assert "Did you mean 'rlenv/Arithmetic-v0'" in captured.err


def test_python_m_rlenv_cli_runs_without_tracebacks_on_user_errors():
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"rlenv {rlenv.__version__}"
    unknown = run_cli("info", "nope/Nope-v0")
    assert unknown.returncode == 2
    assert "Traceback" not in unknown.stderr and "Run `rlenv list`" in unknown.stderr
    usage = run_cli("no-such-command")
    assert usage.returncode == 2 and "invalid choice" in usage.stderr


# ------------------------------------------------------------------------------ check


def test_check_passes_on_the_bundled_envs(capsys):
    assert main(["check", ARITHMETIC, GUESS_NUMBER]) == 0
    out = capsys.readouterr().out
    assert "PASS  cross-process determinism" in out
    assert f"{ARITHMETIC}: passed" in out and f"{GUESS_NUMBER}: passed" in out
    assert "FAIL" not in out
    assert "checked 2 environments: 2 passed" in out


def test_check_exits_1_for_a_broken_env(capfd, broken_env_id):
    args = ["check", "--no-cross-process", "--actions", "20", broken_env_id, ARITHMETIC]
    assert main(args) == 1
    out, err = capfd.readouterr()
    report = out.split(f"conformance of {ARITHMETIC}:")[0]
    assert "FAIL  hostile actions" in report
    assert "verifier failed: RuntimeError: a verifier bug" in report
    assert "SKIP  cross-process determinism: turned off" in report
    # one failing verifier is a short report, not a traceback per step
    assert "Traceback" not in out + err and len(report.splitlines()) < 20
    assert "x BrokenVerify.verify raised: RuntimeError: a verifier bug" in report
    assert "(tracebacks: --verbose)" in report
    assert f"{broken_env_id}: FAILED" in report
    assert f"{ARITHMETIC}: passed" in out
    assert f"1 passed, 1 failed: {broken_env_id}" in out


def test_info_counts_the_tools_a_task_offers(capsys):
    assert main(["info", "rlenv/BFCL-Simple-v0"]) == 0
    out = capsys.readouterr().out
    tools_line = next(line for line in out.splitlines() if line.strip().startswith("tools"))
    assert tools_line.split()[1] != "0" and "card_games_poker_determine_winner" in tools_line
    assert "-k category" in out and "-k parser" in out  # the parameters, as -k accepts them


def test_check_all_checks_every_registered_env(capsys, monkeypatch):
    monkeypatch.setattr(rlenv, "list_envs", lambda namespace=None: [ARITHMETIC, GUESS_NUMBER])
    assert main(["check", "--all", "--no-cross-process", "--actions", "5"]) == 0
    assert "checked 2 environments: 2 passed" in capsys.readouterr().out


@pytest.mark.parametrize("args", [["check"], ["check", "--all", ARITHMETIC]])
def test_check_needs_ids_or_all(capsys, args):
    assert main(args) == 2
    assert "give environment ids to check, or --all" in capsys.readouterr().err


# ------------------------------------------------------------------------------ play


def binary_search_lines(secret: int, low: int = 1, high: int = 100) -> list[str]:
    lines = []
    while True:
        guess = (low + high) // 2
        lines.append(f"My guess is {guess}")
        if guess == secret:
            return lines
        low, high = (guess + 1, high) if secret > guess else (low, guess - 1)


def test_play_a_binary_search_session_reaches_correct():
    env = rlenv.make(GUESS_NUMBER)
    env.reset(seed=0)
    secret = env.task.answer
    lines = binary_search_lines(secret)
    assert len(lines) <= 7

    out = play_text(env, "\n".join(lines) + "\n")
    assert out.count("[assistant]") == len(lines)
    if len(lines) > 1:
        assert "Higher." in out or "Lower." in out
    assert f"Correct! It was {secret}." in out
    assert f"reason='found in {len(lines)} guesses'" in out
    assert "episode over (terminated): total reward 1.0" in out
    assert "--- episode 2: seed 1," in out  # the next episode starts with the next seed
    assert "\033[" not in out  # no colors on a stream that is not a terminal


def test_play_gold_on_arithmetic_earns_reward_1():
    out = play_text(rlenv.make(ARITHMETIC), "/gold\n", seed=4)
    assert "--- episode 1: seed 4," in out
    assert "reward 1.0   terminated True   truncated False" in out
    assert "verdict: reward=1.0  reason='correct'" in out
    assert "episode over (terminated): total reward 1.0 in 1 turn\n" in out


def test_play_continues_a_line_that_ends_with_a_backslash():
    env = rlenv.make(ARITHMETIC)
    env.reset(seed=0)
    answer = env.task.answer
    text = f"Let me think.\\\nStill thinking.\\\nThe answer is \\boxed{{{answer}}}.\n"

    out = play_text(env, text)
    assert out.count("[assistant]") == 1
    assert f"Let me think.\nStill thinking.\nThe answer is \\boxed{{{answer}}}.\n" in out
    assert "verdict: reward=1.0" in out


def test_play_exits_cleanly_at_end_of_input_and_at_quit():
    out = play_text(rlenv.make(GUESS_NUMBER), "")
    assert "--- episode 1: seed 0," in out and "[assistant]" not in out
    out = play_text(rlenv.make(GUESS_NUMBER), "/quit\n50\n")
    assert "[assistant]" not in out
    out = play_text(rlenv.make(GUESS_NUMBER), "50\npending \\")  # EOF inside a continued turn
    assert out.count("[assistant]") == 2  # the continued last turn is sent, not dropped
    assert out.split("[assistant]")[-1].startswith("\npending ")


def test_play_commands():
    out = play_text(rlenv.make(GUESS_NUMBER), "50\n/messages\n/tools\n/nope\n/reset\n/help\n")
    transcript = out.split("reason='50: ")[1]  # after the step: /messages shows the whole chat
    assert re.search(r"\[user\]\nI am thinking of.*\n\[assistant\]\n50\n\[user\]\n", transcript)
    assert "\n[]\n" in out  # /tools: no tools, as JSON
    assert "unknown command /nope; commands: /gold, /reset, /messages, /tools" in out
    assert "--- episode 2: seed 1," in out
    assert "/gold      submit env.gold_action()" in out


def test_play_reports_truncation():
    env = rlenv.make(GUESS_NUMBER, max_turns=7)
    env.reset(seed=0)
    wrong = 1 if env.task.answer != 1 else 2
    out = play_text(env, f"{wrong}\n" * 7)
    assert "terminated False   truncated True" in out
    assert "episode over (truncated): total reward 0.0 in 7 turns" in out


def test_play_shows_an_environment_bug_and_goes_on():
    out = play_text(BrokenRespond(), "hello\n/gold\n")
    assert "the environment raised an exception:" in out
    assert "ZeroDivisionError: respond bug" in out
    assert "--- episode 2: seed 1," in out
    assert "no gold action is known here" in out


def test_play_uses_colors_only_when_asked_or_on_a_terminal():
    assert "\033[32m[assistant]\033[0m" in play_text(rlenv.make(GUESS_NUMBER), "5\n", color=True)


def test_play_from_a_pipe_in_a_real_process():
    result = run_cli("play", ARITHMETIC, "--seed", "5", stdin="/gold\n")
    assert result.returncode == 0, result.stderr
    assert "verdict: reward=1.0  reason='correct'" in result.stdout
    assert "--- episode 2: seed 6," in result.stdout
    assert "\033[" not in result.stdout


# ------------------------------------------------------------------------------ demo


def test_binary_search_guess_narrows_the_range_from_the_replies():
    opening = [{"role": "user", "content": "a whole number between 1 and 100. Guess it"}]
    assert binary_search_guess(opening) == "50"
    conversation = [
        *opening,
        {"role": "assistant", "content": "50"},
        {"role": "user", "content": "Higher."},
        {"role": "assistant", "content": "I say 75"},
        {"role": "user", "content": "Lower."},
    ]
    assert binary_search_guess(conversation) == "62"


def test_tour_lists_envs_and_plays_both_bundled_envs(capsys):
    assert main(["tour"]) == 0
    out = capsys.readouterr().out
    assert ARITHMETIC in out and GUESS_NUMBER in out
    assert "Correct! It was" in out
    guesses = int(re.search(r"reason='found in (\d+) guesses'", out).group(1))
    assert guesses <= 7  # binary search needs at most ceil(log2(100)) guesses
    assert "final verdict: reward=1.0  reason='correct'" in out
    assert out.count("total reward 1.0") == 2


def test_main_handles_help_and_missing_commands(capsys):
    assert main(["--help"]) == 0
    assert "play" in capsys.readouterr().out
    assert main([]) == 2
    assert cli.EXIT_USAGE == 2


def test_view_compares_two_runs_and_refuses_a_metrics_file(tmp_path, capsys):
    from rlenv.rollout import episodes, rollout, write_trajectories
    from rlenv.rollout.policy import ScriptedPolicy

    runs = {}
    for name, reply in (("before", "no idea"), ("after", "\\boxed{0}")):
        specs = episodes(ARITHMETIC, n_tasks=4, group_size=1, seed=0)
        trajectories = rollout(ScriptedPolicy(answers=[reply]), specs)
        runs[name] = tmp_path / name / "trajectories.jsonl"
        runs[name].parent.mkdir()
        write_trajectories(trajectories, runs[name])
    assert main(["view", str(runs["before"]), str(runs["after"])]) == 0
    out = capsys.readouterr().out
    assert out.count("mean reward") == 2 and "report:" in out
    report = (tmp_path / "before" / "compare.html").read_text()
    assert "before" in report and "after" in report

    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"step": 1, "reward_mean": 0.5, "loss": 0.1}\n')
    assert main(["view", str(metrics)]) == 2
    err = capsys.readouterr().err
    assert "is a metrics file (training metrics, one line per step), not trajectories" in err
    assert "Traceback" not in err


def test_backend_choices_and_their_errors(capsys, monkeypatch):
    """--backend picks what generates with a local model: it makes no sense with --base-url,
    and vllm without vLLM installed says how to get it before anything loads."""
    code = main(["eval", ARITHMETIC, "--model", "m", "--base-url", "http://127.0.0.1:1/v1",
                 "--backend", "hf-batch"])  # fmt: skip
    assert code == 2
    assert "--backend picks what generates with a local model" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "vllm", None)  # vLLM is not installed here anyway
    code = main(["eval", ARITHMETIC, "--model", "smollm2-135m", "--backend", "vllm", "-n", "1"])
    assert code != 0
    assert "pip install vllm" in capsys.readouterr().err
    assert main(["eval", ARITHMETIC, "--model", "m", "--backend", "vLLM"]) == 2
    assert "invalid choice: 'vLLM'" in capsys.readouterr().err
