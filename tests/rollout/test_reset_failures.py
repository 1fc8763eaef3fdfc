"""A served env whose reset fails (its server restarted, stayed busy, went away) does not stop
a rollout: the engine retries once on a fresh env, and an episode that still cannot start comes
back unscored and truncated (``stop_reason="reset_failed"``), never a reward-0 sample; the rest
of the batch goes on. The caller's own errors (a bad task id) still raise.

Against real servers on loopback (``rlenv.server.serve_in_thread``), with short retry bounds.
"""

from __future__ import annotations

import contextlib
import socket

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import rlenv
from rlenv.chat import message_text
from rlenv.errors import ServiceError, TaskNotFoundError
from rlenv.pool import EnvPool
from rlenv.remote import RemoteEnv, RetryPolicy, ServerUnreachableError
from rlenv.rollout import ScriptedPolicy, episodes, rollout
from rlenv.server import serve_in_thread

ARITHMETIC = "rlenv/Arithmetic-v0"
QUICK = RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.02, budget=0.5)


def _gold_policy() -> ScriptedPolicy:
    """Answers each arithmetic prompt correctly (the env's own gold action), so a scored
    episode earns 1.0 and a group baseline would notice a 0 standing in for a lost one."""
    local = rlenv.make(ARITHMETIC)
    gold: dict[str, str] = {}
    for seed in range(40):
        observation, _ = local.reset(seed=seed)
        gold[message_text(observation[-1])] = local.gold_action()
    local.close()
    return ScriptedPolicy(lambda conversation: gold[message_text(conversation[-1])])


class _Servers:
    """Servers by name, each on a fixed port, that a test stops and starts again."""

    def __init__(self) -> None:
        self.stacks: dict[str, contextlib.ExitStack] = {}
        self.urls: dict[str, str] = {}

    def start(self, name: str) -> str:
        port = int(self.urls[name].rsplit(":", 1)[1]) if name in self.urls else 0
        stack = contextlib.ExitStack()
        self.urls[name] = stack.enter_context(serve_in_thread([ARITHMETIC], port=port))
        self.stacks[name] = stack
        return self.urls[name]

    def stop(self, name: str) -> None:
        self.stacks.pop(name).close()

    def up(self, name: str) -> bool:
        return name in self.stacks

    def close(self) -> None:
        for name in list(self.stacks):
            self.stop(name)


@pytest.fixture
def servers():
    servers = _Servers()
    yield servers
    servers.close()


def test_a_server_restarted_between_episodes_is_played_on_new_sessions(servers):
    servers.start("a")
    made: list[RemoteEnv] = []

    def make(env_id, **kwargs):
        if not servers.up("a"):  # the operator brings it back on its port (a new instance)
            servers.start("a")
        made.append(RemoteEnv(servers.urls["a"], env_id, retry_policy=QUICK, **kwargs))
        return made[-1]

    seen: list[tuple[str | None, ...]] = []

    def on_episode(trajectory):
        if trajectory.seed == 0:  # the server goes down after the first episode
            servers.stop("a")
        seen.append(tuple(env.session_id for env in made))

    specs = episodes(ARITHMETIC, n_tasks=4)
    with EnvPool(make=make) as pool:
        trajectories = rollout(
            _gold_policy(), specs, pool=pool, max_batch_size=1, on_episode=on_episode
        )
    assert [t.seed for t in trajectories] == [spec.seed for spec in specs]
    assert all(t.scored and t.reward == 1.0 and len(t.turns) == 1 for t in trajectories)
    # the pooled env's reset failed (server down); the retry took a fresh env, a new session
    assert len(made) == 2
    first, second = seen[0][0], seen[1][1]
    assert first is not None and second is not None and first != second
    assert seen[1:] == [(None, second)] * 3  # the old env discarded (closed); one new session


def test_a_server_gone_for_good_gives_unscored_episodes_and_the_batch_goes_on(servers):
    servers.start("a")
    servers.start("b")
    made: dict[str, int] = {"a": 0, "b": 0}

    def make(env_id, *, server, **kwargs):  # the spec's env_kwargs name the server
        made[server] += 1
        return RemoteEnv(servers.urls[server], env_id, retry_policy=QUICK, **kwargs)

    def on_episode(trajectory):
        if servers.up("a") and trajectory.seed == 0:  # server a dies after its first episode
            servers.stop("a")

    on_a = episodes(ARITHMETIC, n_tasks=3, seed=0, server="a")
    on_b = episodes(ARITHMETIC, n_tasks=3, seed=20, server="b")
    specs = [spec for pair in zip(on_a, on_b, strict=True) for spec in pair]
    with EnvPool(make=make) as pool:
        trajectories = rollout(
            _gold_policy(), specs, pool=pool, max_batch_size=2, on_episode=on_episode
        )
    assert [t.seed for t in trajectories] == [spec.seed for spec in specs]  # all, in order
    played_a, *lost = [t for t in trajectories if t.seed < 20]
    assert played_a.scored and played_a.reward == 1.0
    assert len(lost) == 2
    for trajectory in lost:
        assert not trajectory.scored and trajectory.truncated and not trajectory.terminated
        assert trajectory.stop_reason == "reset_failed" and trajectory.turns == []
        assert trajectory.reward == 0.0
        assert trajectory.error.startswith("reset failed 2 times: ServerUnreachableError")
        assert "ConnectionRefused" in trajectory.error
    on_server_b = [t for t in trajectories if t.seed >= 20]
    assert all(t.scored and t.reward == 1.0 for t in on_server_b)
    assert made["b"] == 2  # server b's envs were reused, never thrown away
    # never retried forever: the first env, then at most two fresh ones per lost episode
    assert made["a"] <= 2 + 2 * len(lost)
    # the record round-trips (the JSONL episode log, rlenv collect) and reads as it was
    again = type(lost[0]).model_validate_json(lost[0].to_json())
    assert not again.scored and again.error == lost[0].error


def test_the_grpo_baseline_leaves_a_failed_reset_out_of_its_group(servers, tmp_path):
    pytest.importorskip("torch")
    from rlenv.evaluation import outcome_reason, summarize
    from rlenv.train.algorithm import group_advantages
    from rlenv.train.config import GRPOConfig
    from rlenv.train.grpo import build_batch, sample_rewards

    servers.start("a")

    def make(env_id, **kwargs):
        return RemoteEnv(servers.urls["a"], env_id, retry_policy=QUICK, **kwargs)

    def on_episode(trajectory):
        if servers.up("a"):  # the group's second sample finds its server gone (closed port)
            servers.stop("a")

    specs = episodes(ARITHMETIC, n_tasks=1, group_size=2)
    with EnvPool(make=make) as pool:
        played, lost = rollout(
            _gold_policy(), specs, pool=pool, max_batch_size=1, on_episode=on_episode
        )
    assert played.scored and played.reward == 1.0
    assert not lost.scored and lost.stop_reason == "reset_failed"

    rewards = sample_rewards([played, lost], GRPOConfig(env_id=ARITHMETIC))
    assert rewards == [1.0, None]  # never a 0
    advantages, informative = group_advantages(rewards, ["task", "task"])
    # one scored sample: no baseline to compare with, so no signal (a 0 would have made one)
    assert advantages == [0.0, 0.0] and informative == [False, False]
    assert group_advantages([1.0, 0.0], ["task", "task"])[1] == [True, True]  # the old bug

    # the batch builder takes it (one padding token, masked out) instead of raising
    with_ids = played.model_copy(
        update={
            "turns": [
                played.turns[0].model_copy(
                    update={"prompt_token_ids": [5, 6, 7], "completion_token_ids": [8, 9]}
                )
            ]
        }
    )
    batch = build_batch([with_ids, lost], [0.5, 0.0], [True, False], pad_id=0)
    assert batch.mask[1].sum() == 0 and batch.mask[0].sum() == 2
    assert batch.first == 2  # the played episode's prompt, not the placeholder's

    # rlenv eval's summary counts it unscored, under its own reason, never as a wrong answer
    summary = summarize([played, lost])
    assert summary.unscored == 1 and outcome_reason(lost) == "reset failed"
    assert summary.failures == [("reset failed", 1)]
    from rlenv.report import html_report

    assert "reset failed" in html_report(summary, [played, lost], tmp_path / "r.html").read_text()


def test_the_callers_own_reset_errors_still_raise():
    with pytest.raises(TaskNotFoundError):  # an in-process env, a task id it lacks
        rollout(
            ScriptedPolicy(answers=["1"]),
            episodes(ARITHMETIC, n_tasks=1, task_ids=["no-such-task"]),
        )
    assert not issubclass(TaskNotFoundError, ServiceError)
    with (
        serve_in_thread([ARITHMETIC]) as url,
        EnvPool(make=_remote_maker(url)) as pool,
        pytest.raises(TaskNotFoundError),  # through a served env too: the caller's mistake
    ):
        rollout(
            ScriptedPolicy(answers=["1"]),
            episodes(ARITHMETIC, n_tasks=1, task_ids=["no-such-task"]),
            pool=pool,
        )


def _remote_maker(url: str):
    return lambda env_id, **kwargs: RemoteEnv(url, env_id, retry_policy=QUICK, **kwargs)


def test_what_counts_as_a_service_failure():
    """Refused connections and gateways are; a closed RemoteEnv (the caller's) is not."""
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ServerUnreachableError) as refused:
        RemoteEnv(f"http://127.0.0.1:{port}", ARITHMETIC, retry_policy=QUICK)
    assert isinstance(refused.value, ServiceError)
    from rlenv.remote import _error_from

    assert isinstance(_error_from("POST", "/x", 502, b"bad gateway"), ServiceError)
    assert not isinstance(_error_from("POST", "/x", 500, b"{}"), ServiceError)
    assert not isinstance(
        _error_from("POST", "/x", 400, b'{"error": "EnvNotServed"}'), ServiceError
    )


def test_an_openenv_server_that_is_gone_gives_an_unscored_episode():
    pytest.importorskip("openenv")
    from rlenv.adapters.openenv import OpenEnvError, OpenEnvServerError, OpenEnvTextEnv

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(OpenEnvServerError, match="cannot reach") as gone:
        OpenEnvTextEnv(url)
    assert isinstance(gone.value, ServiceError) and isinstance(gone.value, OpenEnvError)

    made = 0

    def make(env_id, **kwargs):
        nonlocal made
        made += 1
        return OpenEnvTextEnv(url, connect_timeout_s=1.0)

    with EnvPool(make=make) as pool:
        (lost,) = rollout(ScriptedPolicy(answers=["1"]), episodes(ARITHMETIC, n_tasks=1), pool=pool)
    assert made == 2  # one retry, no more
    assert not lost.scored and lost.stop_reason == "reset_failed"
    assert lost.error.startswith("reset failed 2 times: OpenEnvServerError: cannot reach")


def test_any_service_error_in_a_step_ends_that_episode_unscored():
    """``RemoteEnv`` reports a step its server failed as ``EpisodeLostError``; any other
    environment that reaches a service may raise a ``ServiceError`` of its own from ``step``:
    the engine ends that episode unscored as well, and the batch goes on. Other errors from
    ``step`` are not absorbed."""
    from rlenv import Task, TaskList, TextEnv, Verdict

    class Backend(TextEnv):
        def load_tasks(self):
            return TaskList([Task(id=name, prompt=name) for name in ("down", "up", "bug")])

        def verify(self, task, completion):
            return Verdict(reward=1.0)

        def step(self, action):
            if self.task.id == "bug":
                raise RuntimeError("a bug")
            if self.task.id == "down":  # a service failure outside verify()
                raise ServiceError("the grading service did not answer")
            return super().step(action)

    with EnvPool(make=lambda env_id, **kwargs: Backend()) as pool:
        down, up = rollout(
            ScriptedPolicy(lambda conversation: "x"),
            episodes("test/Backend-v0", n_tasks=2, task_ids=["down", "up"]),
            pool=pool,
        )
        assert not down.scored and down.truncated
        assert down.final_verdict.error == (
            "episode lost: ServiceError: the grading service did not answer"
        )
        assert up.scored and up.reward == 1.0
        with pytest.raises(RuntimeError, match="a bug"):
            rollout(
                ScriptedPolicy(lambda conversation: "x"),
                episodes("test/Backend-v0", n_tasks=1, task_ids=["bug"]),
                pool=pool,
            )
