"""OpenEnv both ways, against the real openenv-core: rlenv envs served with OpenEnv's own app and
driven by OpenEnv's own client (GenericEnvClient over its WebSocket protocol, and its HTTP
routes); OpenEnv environments (the echo env `openenv init` generates, written by openenv-core's
own template code, in process and served) wrapped as rlenv TextEnvs under check_env, rollout
(what `rlenv eval` runs) and faults; and the round trip rlenv -> OpenEnv -> rlenv."""

from __future__ import annotations

import importlib
import json
import re
import sys
import urllib.error
import urllib.request

import pytest

pytest.importorskip("openenv.core", reason="pip install 'rlenv[openenv]'")

from openenv.core import GenericEnvClient
from openenv.core.env_server import Action, Environment, Observation, State
from openenv.core.env_server import create_app as openenv_create_app
from pydantic import Field

import rlenv
from rlenv.adapters.openenv import (
    OpenEnvError,
    OpenEnvTextEnv,
    RlenvEnvironment,
    create_app,
    openenv_env,
)
from rlenv.errors import ConformanceError
from rlenv.rollout import ScriptedPolicy
from rlenv.rollout.collector import episodes, rollout
from rlenv.server import serve_in_thread
from rlenv.spaces import HOSTILE_TEXTS
from rlenv.testing import check_env

ARITH = "rlenv/Arithmetic-v0"
GUESS = "rlenv/GuessNumber-v0"


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def echo(tmp_path_factory):
    """OpenEnv's echo environment as `openenv init echo_env` writes it (openenv-core's own
    template and substitution code), imported from a temporary folder."""
    from openenv.cli.commands.init import _copy_template_directory, _create_template_replacements

    root = tmp_path_factory.mktemp("openenv_echo")
    _copy_template_directory(
        "openenv.cli.templates",
        "openenv_env",
        root / "echo_env",
        _create_template_replacements("echo_env"),
        "echo_env",
    )
    sys.path.insert(0, str(root))
    try:
        models = importlib.import_module("echo_env.models")
        server = importlib.import_module("echo_env.server.echo_env_environment")
        yield models, server.EchoEnvironment
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == "echo_env" or m.startswith("echo_env.")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def echo_url(echo):
    models, environment = echo
    app = openenv_create_app(
        environment, models.EchoAction, models.EchoObservation, max_concurrent_envs=4
    )
    with serve_in_thread(app) as url:
        yield url


@pytest.fixture(scope="module")
def arith_url():
    with serve_in_thread(create_app(ARITH, expose_gold=True, max_concurrent_envs=8)) as url:
        yield url


@pytest.fixture(scope="module")
def guess_url():
    with serve_in_thread(create_app(GUESS, expose_gold=True, max_concurrent_envs=8)) as url:
        yield url


def _client(url):
    return GenericEnvClient(base_url=url, message_timeout_s=10).sync()


# ---------------------------------------------------------------- rlenv -> OpenEnv


def test_openenv_client_plays_a_served_env_like_in_process(arith_url):
    local = rlenv.make(ARITH)
    with _client(arith_url) as client:
        for seed in (0, 1, 2):
            expected, info = local.reset(seed=seed)
            result = client.reset(seed=seed)
            assert result.observation["messages"] == expected
            assert result.observation["task_id"] == info["task_id"]
            assert result.reward is None and result.done is False
            state = client.state()
            assert state["task_id"] == info["task_id"] and state["step_count"] == 0
            assert state["env_id"] == ARITH and state["max_turns"] == local.max_turns
            assert state["episode_id"]
            gold = local.unwrapped.gold_action()
            for action in (gold, "I don't know", '{"reward": 1.0}'):
                local.reset(seed=seed)
                client.reset(seed=seed)
                observation, reward, terminated, truncated, step_info = local.step(action)
                result = client.step({"text": action})
                assert (result.reward, result.done) == (reward, terminated or truncated)
                assert result.observation["messages"] == observation
                verdict = result.observation["verdict"]
                assert verdict == step_info["verdict"].model_dump(mode="json")
                assert client.state()["step_count"] == 1
            assert reward == 0.0 and verdict["scored"]
        # the gold answer earns 1, and the served verdict says why
        client.reset(seed=5, episode_id="episode-5")
        assert client.state()["episode_id"] == "episode-5"
        result = client.step({"text": str(client.state()["gold_action"])})
        assert result.reward == 1.0 and result.done


def test_served_multi_turn_env_matches_in_process(guess_url):
    local = rlenv.make(GUESS)
    actions = ["50", "hello", "25", "75", "", "62", "68", "90", "10", "1", "2"]
    with _client(guess_url) as client:
        local.reset(seed=7)
        result = client.reset(seed=7)
        for action in actions:
            observation, reward, terminated, truncated, info = local.step(action)
            result = client.step({"text": action})
            assert result.reward == reward
            assert result.done == (terminated or truncated)
            assert result.observation["terminated"] == terminated
            assert result.observation["truncated"] == truncated
            assert result.observation["messages"] == observation
            assert result.observation["new_messages"] == info["new_messages"]
            if result.done:
                break
        assert result.done


def test_bad_actions_earn_zero_with_a_reason_and_the_session_survives(arith_url):
    with _client(arith_url) as client:
        for text in HOSTILE_TEXTS[:12]:
            client.reset(seed=0)
            result = client.step({"text": text})
            assert result.reward == 0.0 and result.done
            assert result.observation["verdict"]["scored"]
        # a dict that is not an assistant message: reward 0, the reason, the episode goes on
        client.reset(seed=0)
        result = client.step({"message": {"role": "user", "content": "2"}})
        assert result.reward == 0.0 and not result.done
        assert "not an assistant message" in result.observation["verdict"]["error"]
        result = client.step({"message": {"role": "assistant", "content": "nope"}})
        assert result.reward == 0.0 and result.done
        # neither text nor message: OpenEnv's validation error, then the session still works
        client.reset(seed=0)
        with pytest.raises(RuntimeError, match="VALIDATION_ERROR"):
            client.step({"txt": "2"})
        with pytest.raises(RuntimeError, match="VALIDATION_ERROR"):
            client.step({"text": "2", "message": {"role": "assistant", "content": "2"}})
        # stepping a finished episode is a client bug: a clear error naming reset
        client.step({"text": "0"})
        with pytest.raises(RuntimeError, match=r"reset\(\).*EXECUTION_ERROR"):
            client.step({"text": "0"})
        with pytest.raises(RuntimeError, match="unknown reset parameter"):
            client.reset(seed=0, difficulty=3)
        assert client.reset(seed=0).observation["task_id"]


def test_sessions_are_independent(guess_url):
    with _client(guess_url) as one, _client(guess_url) as two:
        first = one.reset(seed=1).observation["task_id"]
        second = two.reset(seed=2).observation["task_id"]
        one.step({"text": "50"})
        assert two.state()["step_count"] == 0 and one.state()["step_count"] == 1
        assert one.state()["task_id"] == first and two.state()["task_id"] == second


def test_http_routes_and_schema(arith_url):
    def get(path):
        with urllib.request.urlopen(arith_url + path, timeout=10) as answer:
            return json.load(answer)

    assert get("/health")["status"] == "healthy"
    assert get("/metadata")["name"] == ARITH
    schema = get("/schema")
    assert {"text", "message"} <= set(schema["action"]["properties"])
    assert {"messages", "verdict", "task_id"} <= set(schema["observation"]["properties"])
    assert "max_turns" in schema["state"]["properties"] or "properties" in schema["state"]
    # OpenEnv's HTTP /reset is stateless (a fresh env per request): it still poses the task
    request = urllib.request.Request(
        arith_url + "/reset",
        data=json.dumps({"seed": 3}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        body = json.load(answer)
    assert body["observation"]["messages"] == rlenv.make(ARITH).reset(seed=3)[0]


def test_create_app_checks_the_id_first():
    with pytest.raises(rlenv.errors.UnknownEnvError):
        create_app("rlenv/NoSuchEnv-v0")


# ---------------------------------------------------------------- OpenEnv -> rlenv


def test_check_env_on_openenvs_echo_env_in_process(echo):
    models, environment = echo
    env = OpenEnvTextEnv(environment(), max_turns=3)
    report = check_env(env, cross_process=False, n_actions=60)
    assert report.passed
    observation, info = env.reset(seed=0)
    assert json.loads(observation[0]["content"])["echoed_message"] == "Echo Env environment ready!"
    _, reward, terminated, truncated, info = env.step("Hello")
    assert reward == pytest.approx(0.5) and not terminated and not truncated
    assert json.loads(info["new_messages"][1]["content"]) == {
        "echoed_message": "Hello",
        "message_length": 5,
    }
    # the reward is the env's, whatever the text claims
    _, reward, *_ = env.step('{"reward": 100, "done": true}')
    assert reward == pytest.approx(2.9)


def test_check_env_on_a_running_openenv_server(echo_url):
    env = openenv_env("openenv+" + echo_url, max_turns=2)
    try:
        assert check_env(env, cross_process=False, n_actions=40).passed
        env.reset(seed=0)
        _, reward, _, truncated, _ = env.step("abc")
        assert reward == pytest.approx(0.3) and not truncated
        _, _, _, truncated, info = env.step("x")
        assert truncated and info["verdict"].scored  # echo never ends: max_turns does
    finally:
        env.close()


def test_rlenv_check_takes_an_openenv_server_url(echo_url, tmp_path, capsys):
    """`rlenv check openenv+http://...`: the conformance suite over OpenEnv's protocol, with the
    JSON report CI reads; a URL where no OpenEnv server answers is a failed check, not a crash."""
    import json

    from rlenv.cli import main

    report = tmp_path / "check.json"
    code = main(["check", "openenv+" + echo_url + "?max_turns=3", "--json", str(report)])
    result = json.loads(report.read_text())
    assert code == 0, result
    assert result["passed"] and len(result["environments"]) == 1
    statuses = {c["name"]: c["status"] for c in result["environments"][0]["checks"]}
    assert statuses["hostile actions"] == "pass" and statuses["reset determinism"] == "pass"
    assert statuses["cross-process determinism"] == "skip"
    # echo never ends by itself: one turn (the default) truncates at once, which Gymnasium's
    # checker rejects, and the report says so
    assert main(["check", "openenv+" + echo_url, "--json", str(report)]) == 1
    assert "truncates after 1 step" in report.read_text()
    assert main(["check", "openenv+http://127.0.0.1:9", "--json", str(report)]) == 1
    failed = json.loads(report.read_text())
    assert not failed["passed"] and "no OpenEnv server answers" in json.dumps(failed)


def test_rlenv_check_over_openenv_of_a_served_rlenv_env(arith_url, capsys):
    from rlenv.cli import main

    assert main(["check", "openenv+" + arith_url]) == 0
    assert "passed" in capsys.readouterr().out


class GuessAction(Action):
    guess: int = Field(..., description="A whole number")


class GuessObservation(Observation):
    feedback: str = ""


class GuessSeven(Environment):
    """An OpenEnv env whose action is not text: guess 7 (in at most 3 tries)."""

    def __init__(self):
        super().__init__()
        self._state = State(episode_id="e", step_count=0)

    def reset(self, seed=None, episode_id=None, **kwargs) -> GuessObservation:
        self._state = State(episode_id=episode_id or "e", step_count=0)
        return GuessObservation(feedback="Guess my number (1-9).")

    def step(self, action: GuessAction, timeout_s=None, **kwargs) -> GuessObservation:
        self._state.step_count += 1
        if action.guess == 13:
            raise RuntimeError("the env broke")
        right = action.guess == 7
        return GuessObservation(
            feedback="right" if right else "wrong", reward=float(right), done=right
        )

    @property
    def state(self) -> State:
        return self._state


def _parse_guess(text):
    return {"guess": int(text.strip())}


def test_non_text_actions_need_an_action_fn_and_bad_text_earns_zero():
    with pytest.raises(OpenEnvError, match="action_fn"):
        OpenEnvTextEnv(GuessSeven(), max_turns=3)
    env = OpenEnvTextEnv(GuessSeven(), action_fn=_parse_guess, max_turns=3)
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step("seven")
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert info["verdict"].scored and "invalid action" in info["verdict"].error
    assert info["new_messages"][1]["content"].startswith("Invalid action")
    _, reward, terminated, _, info = env.step("7")
    assert (reward, terminated) == (1.0, True)
    assert info["new_messages"][1] == {"role": "user", "content": "right"}
    assert check_env(env, cross_process=False, n_actions=40).passed
    # an action_fn that returns junk is the model's turn refused too, never a crash
    env = OpenEnvTextEnv(GuessSeven(), action_fn=lambda text: {"guess": "x" + text}, max_turns=2)
    env.reset(seed=0)
    _, reward, _, _, info = env.step("7")
    assert reward == 0.0 and "invalid action" in info["verdict"].error


def test_a_failing_env_gives_an_unscored_truncated_episode(caplog):
    env = OpenEnvTextEnv(GuessSeven(), action_fn=_parse_guess, max_turns=3)
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step("13")
    assert (reward, terminated, truncated) == (0.0, False, True)
    assert not info["verdict"].scored and "the env broke" in info["verdict"].error
    # check_env catches an env that fails on model output
    env = OpenEnvTextEnv(GuessSeven(), action_fn=lambda text: {"guess": 13}, max_turns=3)
    with pytest.raises(ConformanceError, match="could not score"):
        check_env(env, cross_process=False, n_actions=5)


def test_served_non_text_env_refusals_and_failures_over_the_wire():
    app = openenv_create_app(GuessSeven, GuessAction, GuessObservation)
    with serve_in_thread(app) as url:
        env = OpenEnvTextEnv(url, action_fn=lambda text: {"guess": text.strip()}, max_turns=3)
        env.reset(seed=0)
        # OpenEnv's server refuses the shape (VALIDATION_ERROR): the model's fault, scored 0
        _, reward, terminated, truncated, info = env.step("seven")
        assert (reward, terminated, truncated) == (0.0, False, False)
        assert info["verdict"].scored and "VALIDATION_ERROR" in info["verdict"].error
        # the env raises (EXECUTION_ERROR): not the model's fault, unscored and truncated
        _, reward, terminated, truncated, info = env.step("13")
        assert (reward, terminated, truncated) == (0.0, False, True)
        assert not info["verdict"].scored and "the env broke" in info["verdict"].error
        env.reset(seed=0)  # the same connection goes on
        assert env.step("7")[1:3] == (1.0, True)
        env.close()


class Broken(rlenv.TextEnv):
    """Fails on its second turn (an env bug): rlenv truncates, unscored."""

    max_turns = 5

    def load_tasks(self):
        return rlenv.TaskList([{"prompt": "Say anything.", "answer": "x"}])

    def respond(self, message):
        if self.turn >= 2:
            raise KeyError("bug")
        return rlenv.Turn.reply("More.")


def test_a_served_env_failure_stays_truncated_and_unscored_when_wrapped():
    rlenv.register("openenv-test/Broken-v0", Broken)
    try:
        with serve_in_thread(create_app("openenv-test/Broken-v0")) as url:
            wrapped = OpenEnvTextEnv(url)
            original = rlenv.make("openenv-test/Broken-v0").unwrapped
            assert wrapped.max_turns == 5
            wrapped.reset(seed=0)
            original.reset(seed=0)
            for action in ("a", "b"):
                a, b = wrapped.step(action), original.step(action)
                assert a[1:4] == b[1:4] and a[0] == b[0]
                assert a[4]["verdict"] == b[4]["verdict"]
            assert a[3] and not a[4]["verdict"].scored
            with pytest.raises(rlenv.errors.EpisodeFinishedError):
                wrapped.step("c")
            wrapped.close()
    finally:
        rlenv.unregister("openenv-test/Broken-v0")


def test_a_server_that_dies_mid_episode_gives_unscored_then_a_clear_error(echo):
    models, environment = echo
    app = openenv_create_app(environment, models.EchoAction, models.EchoObservation)
    with serve_in_thread(app) as url:
        env = OpenEnvTextEnv(url, max_turns=5, message_timeout_s=5)
        env.reset(seed=0)
        assert env.step("hi")[1] == pytest.approx(0.2)
    _, reward, terminated, truncated, info = env.step("again")
    assert (reward, terminated, truncated) == (0.0, False, True)
    assert not info["verdict"].scored and "OpenEnv environment failed" in info["verdict"].error
    with pytest.raises(OpenEnvError, match="cannot reach"):
        env.reset(seed=0)
    env.close()


def test_a_server_that_is_not_there():
    with pytest.raises(OpenEnvError):
        OpenEnvTextEnv("http://127.0.0.1:9", connect_timeout_s=2)
    with pytest.raises(ValueError, match="not an OpenEnv server URL"):
        openenv_env("rlenv/Arithmetic-v0")


# ---------------------------------------------------------------- round trip


@pytest.mark.parametrize("env_id", [ARITH, GUESS])
def test_round_trip_passes_check_env_with_the_originals_rewards(env_id, arith_url, guess_url):
    url = arith_url if env_id == ARITH else guess_url
    wrapped = OpenEnvTextEnv(url)
    original = rlenv.make(env_id).unwrapped
    try:
        assert wrapped.rlenv_served and wrapped.max_turns == original.max_turns
        report = check_env(wrapped, cross_process=False, n_actions=100)
        assert report.passed
        assert [c.name for c in report.skipped] == ["cross-process determinism"]  # gold ran
        actions = ["50", "junk", "25", "37", "43", "40", "41", "42", "44", "45", "46"]
        for seed in (0, 1, 2):
            wrapped_obs, _ = wrapped.reset(seed=seed)
            seed_of_remote = wrapped.task.metadata["openenv_seed"]
            original_obs, _ = original.reset(seed=seed_of_remote)
            assert wrapped_obs == original_obs
            for action in actions:
                a = wrapped.step(action)
                b = original.step(action)
                assert a[0] == b[0] and a[1:4] == b[1:4]
                assert a[4]["verdict"] == b[4]["verdict"]
                if a[2] or a[3]:
                    break
    finally:
        wrapped.close()


def test_in_process_round_trip_and_tool_messages():
    wrapped = OpenEnvTextEnv(lambda: RlenvEnvironment(ARITH, expose_gold=True))
    assert check_env(wrapped, cross_process=False, n_actions=50).passed
    wrapped.reset(seed=0)
    _, reward, terminated, _, info = wrapped.step(
        {"role": "assistant", "content": str(wrapped.gold_action())}
    )
    assert (reward, terminated) == (1.0, True) and info["verdict"].reason
    wrapped.close()


def test_rollout_runs_on_a_wrapped_server(arith_url):
    """What `rlenv eval` and the trainers run: the registry, an EnvPool, rollout()."""
    env_id = "openenv-test/Arithmetic-v0"
    rlenv.register(env_id, "rlenv.adapters.openenv:OpenEnvTextEnv", kwargs={"target": arith_url})
    try:

        def answer(conversation):
            # the policy that solves "Compute $a op b$": what the original env pays 1 for
            match = re.search(r"\$(-?\d+) (\\times|\+|-) (-?\d+)\$", conversation[-1]["content"])
            if match is None:
                return "no idea"
            a, op, b = int(match[1]), match[2], int(match[3])
            value = {"+": a + b, "-": a - b}.get(op, a * b)
            return "\\boxed{" + str(value) + "}"

        specs = episodes(env_id, n_tasks=6, seed=0)
        solved = rollout(ScriptedPolicy(answer), specs, env_workers=2)
        failed = rollout(ScriptedPolicy(answers=["no idea"]), specs, env_workers=2)
        assert [t.reward for t in failed] == [0.0] * 6
        assert len(solved) == 6 and all(t.scored for t in solved)
        assert [t.reward for t in solved] == [1.0] * 6, [t.messages[0] for t in solved]
        assert check_env(env_id, n_actions=20).passed  # cross-process too: the id is importable
    finally:
        rlenv.unregister(env_id)


def test_http_step_is_stateless_in_openenv(arith_url):
    """OpenEnv's HTTP /step makes a fresh env per request: an episode needs the /ws session
    (EnvClient); the error is a 500 from OpenEnv's server, not a hang."""
    request = urllib.request.Request(
        arith_url + "/step",
        data=json.dumps({"action": {"text": "2"}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=10)
    assert error.value.code == 500
