"""The conformance suite: ``check_env`` proves an environment keeps the TextEnv contract.

Every registered environment must pass it; ``rlenv check ID`` runs it from the command line,
and :func:`conformance_test` puts it in an env author's own pytest suite in one line::

    from rlenv.testing import conformance_test

    test_conformance = conformance_test("my_envs/Reverse-v0")

The checks:

- ``gymnasium``: Gymnasium's own ``check_env`` passes without a warning.
- ``reset determinism``: the same seed poses the same task (same first observation), and
  ``options={"task_id": ...}`` poses it again.
- ``step determinism``: the same seed and the same actions give the same observations,
  rewards and verdicts.
- ``cross-process determinism``: a fresh Python process (another hash seed) makes the same
  first observations (registered environments with JSON-serialisable kwargs only).
- ``hostile actions``: ``n_actions`` random and hostile texts (empty, 1 MB, binary junk,
  unbalanced braces, fake tool calls, prompt injections) never raise; every step returns a
  well-formed 5-tuple whose observation extends the previous one by ``info["new_messages"]``;
  every verdict is scored; episodes end within ``max_turns``.
- ``finished episode``: stepping after the end raises ``EpisodeFinishedError``, and stepping
  before the first reset raises ``ResetNeededError``.
- ``gold answer``: where the environment knows a gold action, playing it earns ``max_reward``.

A running service is checked over the wire the same way (``rlenv check http://host:port/ID``,
:func:`check_service`): the env is a client (:class:`~rlenv.remote.RemoteEnv` for an
``rlenv serve`` server) and every check runs through it, except those that need the
environment's own object (the hidden task, the gold action, another local process), which are
skipped with the reason. Each scheme of such a target (``http``, ``https``, and the ones
plugged in with :func:`register_check_scheme`) names a function that opens its environments.
:meth:`ConformanceReport.to_dict` is the machine-readable report (``rlenv check --json``).
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import math
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from typing import Any

import gymnasium
import numpy as np
from gymnasium.utils.env_checker import check_env as gymnasium_check_env

from rlenv.chat import is_valid_message
from rlenv.env import TextEnv
from rlenv.errors import ConformanceError, EpisodeFinishedError, ResetNeededError, RLEnvError
from rlenv.spaces import HOSTILE_TEXTS
from rlenv.verdict import Verdict

__all__ = [
    "CheckResult",
    "ConformanceReport",
    "check_env",
    "check_schemes",
    "check_service",
    "check_targets",
    "conformance_test",
    "hostile_actions",
    "register_check_scheme",
    "tiny_chat_model",
    "word_level_chat_tokenizer",
]

# A step slower than this is reported: a hostile input must not make an env hang.
SLOW_STEP_SECONDS = 10.0


@dataclass
class CheckResult:
    """The outcome of one named check."""

    name: str
    status: str  # "pass", "fail" or "skip"
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.status != "fail"


@dataclass
class ConformanceReport:
    """All check results for one environment. ``str(report)`` is a readable summary."""

    env_name: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        return [result for result in self.results if not result.passed]

    @property
    def skipped(self) -> list[CheckResult]:
        """Checks that did not run (the summary line names them: a skip is not a pass)."""
        return [result for result in self.results if result.status == "skip"]

    def __str__(self) -> str:
        lines = [f"conformance of {self.env_name}:"]
        for result in self.results:
            mark = {"pass": "PASS", "fail": "FAIL", "skip": "SKIP"}[result.status]
            line = f"  {mark}  {result.name}"
            if result.detail:
                detail = result.detail.replace("\n", "\n          ")
                line += f": {detail}"
            lines.append(line)
        verdict = "passed" if self.passed else f"FAILED ({len(self.failures)} checks)"
        if self.skipped:
            reasons = "; ".join(
                f"{result.name} ({result.detail})" if result.detail else result.name
                for result in self.skipped
            )
            verdict += (
                f", {len(self.skipped)} check{'s' * (len(self.skipped) > 1)} skipped: {reasons}"
            )
        lines.append(f"{self.env_name}: {verdict}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON data: ``{"env", "passed", "checks": [{"name", "status",
        "detail"}]}`` (status ``pass``, ``fail`` or ``skip``; a skip is not a failure)."""
        return {
            "env": self.env_name,
            "passed": self.passed,
            "checks": [
                {"name": r.name, "status": r.status, "detail": r.detail} for r in self.results
            ],
        }


class _CheckFailed(Exception):
    pass


def hostile_actions(n: int, *, seed: int = 0, action_space: Any = None) -> list[str]:
    """``n`` hostile texts: the fixed corpus (plus 1 MB of text), then seeded samples.

    Samples come from ``action_space`` when given (so an env's own space is exercised), else
    from random mixtures of :data:`rlenv.spaces.HOSTILE_TEXTS`.
    """
    fixed = [*HOSTILE_TEXTS, "x" * 1_000_000, "{[(" * 100_000, bytes(range(256)).decode("latin-1")]
    actions = fixed[:n]
    rng = np.random.default_rng(seed)
    if action_space is not None:
        action_space.seed(seed)
    while len(actions) < n:
        if action_space is not None and len(actions) % 2:
            actions.append(action_space.sample())
        else:
            picks = rng.integers(0, len(HOSTILE_TEXTS), size=int(rng.integers(1, 4)))
            actions.append("".join(HOSTILE_TEXTS[i] for i in picks))
    return actions


def check_env(
    env: TextEnv | str,
    *,
    seeds: tuple[int, ...] = (0, 1, 2),
    n_actions: int = 200,
    cross_process: bool = True,
    raise_on_failure: bool = True,
    fresh: Callable[[], Any] | None = None,
    name: str | None = None,
) -> ConformanceReport:
    """Run the conformance suite on ``env`` (an instance or a registered id).

    Args:
        env: The environment, or the id of a registered one, or a client of a served one (a
            Gymnasium env with the TextEnv's ``reset``/``step``, ``max_turns`` and spaces, such
            as :class:`~rlenv.remote.RemoteEnv`): checks that need the TextEnv object itself
            (its hidden task, ``gold_action``, a copy in another process) are then narrowed or
            skipped with the reason.
        seeds: Seeds used by the determinism and gold-answer checks.
        n_actions: How many hostile actions to step (across as many episodes as they take).
        cross_process: Also compare first observations with a fresh Python process.
        raise_on_failure: Raise :class:`~rlenv.errors.ConformanceError` (carrying the report)
            when a check fails; otherwise just return the report.
        fresh: Makes another instance of the env (a new session, for a served one), for the
            step-before-reset check; by default the env's registered spec makes it.
        name: The report's name for the env (default: its registered id, else its class).

    Returns:
        The :class:`ConformanceReport`.
    """
    if isinstance(env, str):
        from rlenv.registry import make

        env = make(env)
    local = isinstance(env, TextEnv)
    if not local and not (isinstance(env, gymnasium.Env) and hasattr(env, "max_turns")):
        raise TypeError(
            f"check_env needs a rlenv.TextEnv or a client of a served one, got {type(env).__name__}"
        )
    if name is None:
        name = env.spec.id if env.spec is not None else type(env).__name__
    report = ConformanceReport(name)
    deterministic = not (env.spec is not None and env.spec.nondeterministic)

    # (name, check, why it does not run; None: it runs). A check returns a skip reason or None.
    nondeterministic = None if deterministic else "the env is registered nondeterministic"
    remote = (
        None
        if local
        else "needs the environment's own object (another local process); the service runs "
        "elsewhere: run `rlenv check ID` where it is installed"
    )
    checks: list[tuple[str, Callable[[], str | None], str | None]] = [
        ("gymnasium check_env", lambda: _check_gymnasium(env), None),
        ("reset determinism", lambda: _check_reset_determinism(env, seeds), nondeterministic),
        ("step determinism", lambda: _check_step_determinism(env, seeds), nondeterministic),
        (
            "cross-process determinism",
            lambda: _check_cross_process(env, seeds),
            nondeterministic
            or remote
            or (None if cross_process else "turned off (cross_process=False)"),
        ),
        ("hostile actions", lambda: _check_hostile_actions(env, n_actions), None),
        ("finished episode", lambda: _check_finished_episode(env, fresh), None),
        (
            "gold answer",
            lambda: _check_gold(env, seeds),
            None if local else "the gold action is not exposed over the wire",
        ),
    ]
    for check_name, check, off in checks:
        if off is not None:
            report.results.append(CheckResult(check_name, "skip", off))
            continue
        try:
            skipped = check()
        except _CheckFailed as failure:
            report.results.append(CheckResult(check_name, "fail", str(failure)))
        except Exception as error:
            report.results.append(
                CheckResult(check_name, "fail", f"raised {type(error).__name__}: {error}")
            )
        else:
            status = "skip" if skipped else "pass"
            report.results.append(CheckResult(check_name, status, skipped or ""))
    if raise_on_failure and not report.passed:
        raise ConformanceError(report)
    return report


def conformance_test(*env_ids: str, **check_kwargs: Any) -> Callable[..., None]:
    """A pytest test function running :func:`check_env` on each id (one test case per id).

    Assign it to a ``test_*`` name in a test module::

        test_conformance = conformance_test("my_envs/Reverse-v0", "my_envs/Maze-v1")
    """
    import pytest

    if not env_ids:
        raise ValueError("conformance_test needs at least one environment id")

    @pytest.mark.parametrize("env_id", env_ids)
    def test_rlenv_conformance(env_id: str) -> None:
        check_env(env_id, **check_kwargs)

    return test_rlenv_conformance


# ---------------------------------------------------------------------------------- checks


def _fail(message: str) -> None:
    raise _CheckFailed(message)


def _short(text: Any, limit: int = 60) -> str:
    text = repr(text)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def _check_gymnasium(env: TextEnv) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # The render check makes a render_mode="human" copy, which prints; keep that quiet.
        with redirect_stdout(io.StringIO()):
            gymnasium_check_env(env, skip_render_check=env.spec is None)
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    if messages:
        _fail("Gymnasium warned:\n" + "\n".join(dict.fromkeys(messages)))


def _episode_start_digest(env: TextEnv, seed: int) -> str:
    """A digest of the first observation and the whole task (its hidden answer included)."""
    observation, _ = env.reset(seed=seed)
    blob = json.dumps(
        [observation, env.task.model_dump(mode="json")],
        sort_keys=True,
        ensure_ascii=True,
        default=repr,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _check_reset_determinism(env: TextEnv, seeds: tuple[int, ...]) -> None:
    def task() -> Any:  # the hidden task (its answer) where the env is local; over the wire
        return getattr(env, "task", None)  # the observation and task id are all there is

    for seed in seeds:
        first, info_1 = env.reset(seed=seed)
        posed = task()
        again, info_2 = env.reset(seed=seed)
        if first != again or info_1.get("task_id") != info_2.get("task_id") or task() != posed:
            _fail(f"reset(seed={seed}) posed different tasks on two calls")
        task_id = info_1.get("task_id")
        by_id, info_3 = env.reset(options={"task_id": task_id})
        if by_id != first or info_3.get("task_id") != task_id or task() != posed:
            _fail(f"reset(options={{'task_id': {task_id!r}}}) did not pose the task of seed {seed}")


def _episode_trace(env: TextEnv, seed: int, actions: list[str]) -> list[Any]:
    observation, _ = env.reset(seed=seed)
    trace: list[Any] = [observation]
    for action in actions:
        observation, reward, terminated, truncated, info = env.step(action)
        trace.append((observation, reward, terminated, truncated, info["verdict"]))
        if terminated or truncated:
            break
    return trace


def _check_step_determinism(env: TextEnv, seeds: tuple[int, ...]) -> None:
    for seed in seeds:
        env.reset(seed=seed)
        gold = env.gold_action() if isinstance(env, TextEnv) else None
        actions = [*hostile_actions(4, seed=seed)[1:], *([gold] if isinstance(gold, str) else [])]
        if _episode_trace(env, seed, actions) != _episode_trace(env, seed, actions):
            _fail(f"seed {seed}: the same actions gave different observations, rewards or verdicts")


_CHILD_SCRIPT = """
import json, sys
import gymnasium, rlenv
from rlenv.testing import _episode_start_digest
env_id, entry_point = sys.argv[1], sys.argv[2]
kwargs, seeds = json.loads(sys.argv[3]), json.loads(sys.argv[4])
rlenv.load_plugins()
if env_id not in gymnasium.registry:  # registered at run time in the parent (e.g. by a test)
    rlenv.register(env_id, entry_point)
env = rlenv.make(env_id, **kwargs)
for seed in seeds:
    print(_episode_start_digest(env, seed))
"""


def _importable_entry_point(entry_point: Any) -> str | None:
    """``"module:qualname"`` for an entry point another process can import, else None."""
    if isinstance(entry_point, str):
        return entry_point
    module_name = getattr(entry_point, "__module__", None)
    qualname = getattr(entry_point, "__qualname__", "")
    module = sys.modules.get(module_name or "")
    if module is None or module_name == "__main__" or not getattr(module, "__file__", None):
        return None
    target: Any = module
    for part in qualname.split("."):
        target = getattr(target, part, None)
    return f"{module_name}:{qualname}" if target is entry_point else None


def _check_cross_process(env: TextEnv, seeds: tuple[int, ...]) -> str | None:
    if env.spec is None:
        return "the environment has no registered id"
    entry_point = _importable_entry_point(env.spec.entry_point)
    if entry_point is None:
        if getattr(env.spec.entry_point, "__module__", None) == "__main__":
            return (
                "its class is defined in __main__ (a notebook or a script), which another "
                "process cannot import; move it into a module to run this check"
            )
        return "its entry point cannot be imported by another process"
    try:
        kwargs = json.dumps(env.spec.kwargs or {})
    except TypeError:
        return "its kwargs are not JSON-serialisable"
    expected = [_episode_start_digest(env, seed) for seed in seeds]
    child_env = {
        **os.environ,
        "PYTHONHASHSEED": str(os.getpid() % 4000 + 17),
        # The child sees the same modules as this process (test helpers included).
        "PYTHONPATH": os.pathsep.join(path for path in sys.path if path),
    }
    result = subprocess.run(
        [sys.executable, "-c", _CHILD_SCRIPT, env.spec.id, entry_point, kwargs, json.dumps(seeds)],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        _fail(f"the child process failed:\n{result.stderr.strip()[-2000:]}")
    if result.stdout.split() != expected:
        _fail("a fresh process posed different tasks for the same seeds")
    return None


def _check_step_result(env: TextEnv, before: list[Any], result: Any, action: Any) -> bool:
    """Validate one step's 5-tuple; return whether the episode ended."""
    where = f"after action {_short(action)}"
    if not isinstance(result, tuple) or len(result) != 5:
        _fail(f"step() did not return a 5-tuple {where}")
    observation, reward, terminated, truncated, info = result
    if type(reward) is not float or not math.isfinite(reward):
        _fail(f"reward {reward!r} is not a finite float {where}")
    if type(terminated) is not bool or type(truncated) is not bool:
        _fail(f"terminated/truncated are not bools {where}")
    if not isinstance(info, dict):
        _fail(f"info is not a dict {where}")
    for key in ("new_messages", "tools", "verdict", "task_id", "turn"):
        if key not in info:
            _fail(f"info has no {key!r} {where}")
    verdict = info["verdict"]
    if not isinstance(verdict, Verdict):
        _fail(f"info['verdict'] is a {type(verdict).__name__}, not a Verdict {where}")
    if not verdict.scored:
        _fail(f"the verifier could not score {where}: {verdict.error}")
    if not isinstance(info["tools"], list):
        _fail(f"info['tools'] is not a list {where}")
    new_messages = info["new_messages"]
    if not isinstance(new_messages, list) or not all(is_valid_message(m) for m in new_messages):
        _fail(f"info['new_messages'] holds invalid messages {where}")
    if not new_messages or new_messages[0].get("role") != "assistant":
        _fail(f"info['new_messages'] does not start with the model's message {where}")
    if observation not in env.observation_space:
        _fail(f"the observation is not in the observation space {where}")
    if observation != before + new_messages:
        _fail(f"the observation is not the previous one plus info['new_messages'] {where}")
    return terminated or truncated


def _check_hostile_actions(env: TextEnv, n_actions: int) -> None:
    actions = hostile_actions(n_actions, seed=1234, action_space=env.action_space)
    episode = 0
    observation, _ = env.reset(seed=episode)
    steps = 0
    for action in actions:
        started = time.perf_counter()
        result = env.step(action)
        elapsed = time.perf_counter() - started
        if elapsed > SLOW_STEP_SECONDS:
            _fail(f"a step took {elapsed:.1f} s on action {_short(action)}")
        steps += 1
        ended = _check_step_result(env, observation, result, action)
        if steps > env.max_turns:
            _fail(f"an episode ran {steps} steps, over max_turns={env.max_turns}")
        observation = result[0]
        if ended:
            episode += 1
            steps = 0
            observation, _ = env.reset(seed=episode)


def _check_finished_episode(env: TextEnv, fresh: Callable[[], Any] | None = None) -> None:
    env.reset(seed=0)
    for _ in range(env.max_turns):
        _, _, terminated, truncated, _ = env.step("")
        if terminated or truncated:
            break
    else:
        _fail(f"empty replies did not end the episode within max_turns={env.max_turns}")
    with _expect(EpisodeFinishedError, "step() after the end of an episode"):
        env.step("one more")
    if fresh is None and env.spec is not None:
        spec = env.spec
        fresh = lambda: spec.make(disable_env_checker=True).unwrapped  # noqa: E731
    if fresh is not None:
        other = fresh()
        try:
            with _expect(ResetNeededError, "step() before the first reset()"):
                other.step("hello")
        finally:
            other.close()


@contextmanager
def _expect(error_type: type[Exception], what: str) -> Iterator[None]:
    try:
        yield
    except error_type:
        return
    except Exception as error:
        _fail(f"{what} raised {type(error).__name__}, expected {error_type.__name__}: {error}")
    _fail(f"{what} did not raise {error_type.__name__}")


def _check_gold(env: TextEnv, seeds: tuple[int, ...]) -> str | None:
    played = 0
    for seed in seeds:
        env.reset(seed=seed)
        total, ended = 0.0, False
        for _ in range(env.max_turns):
            action = env.gold_action()
            if action is None:
                break
            _, reward, terminated, truncated, info = env.step(action)
            total += reward
            if truncated:
                _fail(f"seed {seed}: the gold action was truncated: {info['verdict']}")
            if terminated:
                ended = True
                break
        if action is None and not ended and env.turn == 0:
            continue
        played += 1
        if not ended:
            _fail(f"seed {seed}: gold actions did not finish the episode")
        if not math.isclose(total, env.max_reward, rel_tol=1e-9, abs_tol=1e-9):
            _fail(
                f"seed {seed}: the gold action earned {total}, not max_reward={env.max_reward} "
                f"(last verdict: {info['verdict']})"
            )
    if played == 0:
        return (
            "the environment gives no gold action (override gold_action(); "
            "docs/writing-an-environment.md and docs/tools.md show how)"
        )
    return None


# ------------------------------------------------------------------- services, over the wire

CheckTarget = tuple[str, Callable[[], Any]]
"""One environment of a service: its name in the report and a function that opens a new
client of it (a session; ``check_env`` opens a second one for the step-before-reset check)."""

_SCHEMES: dict[str, str | Callable[[str], list[CheckTarget]]] = {
    "http": "rlenv.testing:rlenv_service_targets",
    "https": "rlenv.testing:rlenv_service_targets",
    # an OpenEnv server (pip install 'rlenv[openenv]'), wrapped as a TextEnv
    "openenv+http": "rlenv.adapters.openenv:check_targets",
    "openenv+https": "rlenv.adapters.openenv:check_targets",
}


def register_check_scheme(scheme: str, opener: str | Callable[[str], list[CheckTarget]]) -> None:
    """Let ``rlenv check SCHEME://...`` check a kind of service: ``opener(target)`` returns
    the target's :data:`CheckTarget` s (each client a TextEnv, or a Gymnasium env with its
    ``reset``/``step``, ``max_turns`` and spaces). ``opener`` may be ``"module:function"``,
    imported on first use (so registering costs no import)."""
    if "://" in scheme or not scheme:
        raise ValueError(f"a scheme is the part before '://', got {scheme!r}")
    _SCHEMES[scheme.lower()] = opener


def check_schemes() -> list[str]:
    """The schemes ``rlenv check SCHEME://...`` knows (``http``, ``https``, those registered)."""
    return sorted(_SCHEMES)


def check_targets(target: str) -> list[CheckTarget]:
    """The environments ``target`` (``SCHEME://...``) names, by its scheme's opener."""
    scheme = target.split("://", 1)[0].lower() if "://" in target else ""
    opener = _SCHEMES.get(scheme)
    if opener is None:
        known = ", ".join(f"{name}://" for name in sorted(_SCHEMES))
        raise ConformanceTargetError(
            f"{target!r}: no checker for {scheme or 'this'}:// targets (known: {known}; "
            "rlenv.testing.register_check_scheme adds one)"
        )
    if isinstance(opener, str):
        module, _, function = opener.partition(":")
        opener = getattr(importlib.import_module(module), function)
    return opener(target)


class ConformanceTargetError(RLEnvError, ValueError):
    """A service to check cannot be reached, or does not serve the environment named."""


def _served_ids(base_url: str, timeout: float) -> list[str] | None:
    """``GET base_url/envs`` of an ``rlenv serve`` server; None when that is not one."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{base_url}/envs", timeout=timeout) as answer:
            ids = json.loads(answer.read()).get("env_ids")
    except urllib.error.HTTPError:  # an HTTP server, but no listing at this path
        return None
    except urllib.error.URLError as error:  # nobody answers: refused, no such host
        raise ConformanceTargetError(f"{base_url} cannot be reached: {error.reason}") from None
    except (TimeoutError, ConnectionError) as error:
        raise ConformanceTargetError(f"{base_url} cannot be reached: {error}") from None
    except (ValueError, AttributeError):  # an answer, but not a listing
        return None
    return ids if isinstance(ids, list) else None


def rlenv_service_targets(url: str, *, timeout: float = 60.0) -> list[CheckTarget]:
    """The environments of an ``rlenv serve`` server: ``http://host:port/NS/Name-v0`` names one
    (the server may sit under a path prefix: the longest prefix that serves ``NS/Name-v0``
    wins), ``http://host:port`` every one it serves. Each client is a
    :class:`~rlenv.remote.RemoteEnv`."""
    from urllib.parse import urlsplit

    from rlenv.remote import RemoteEnv

    parts = urlsplit(url)
    if not parts.netloc:
        raise ConformanceTargetError(f"{url!r} is not a URL like http://host:port/NS/Name-v0")
    root = f"{parts.scheme}://{parts.netloc}"
    segments = [segment for segment in parts.path.split("/") if segment]
    for cut in range(len(segments), -1, -1):  # the whole path as a base first, then shorter
        base = "/".join([root, *segments[:cut]])
        served = _served_ids(base, timeout)
        if served is None:
            continue
        wanted = "/".join(segments[cut:])
        if wanted and wanted not in served:
            continue
        ids = [wanted] if wanted else list(served)

        def opener(env_id: str, base: str = base) -> Callable[[], Any]:
            return lambda: RemoteEnv(base, env_id, timeout=timeout)

        return [(f"{env_id} at {base}", opener(env_id)) for env_id in ids]
    raise ConformanceTargetError(
        f"{url}: no rlenv server there serves {'/'.join(segments) or 'any environment'} "
        "(GET .../envs lists what a server serves)"
    )


def check_service(target: str, **check_kwargs: Any) -> list[ConformanceReport]:
    """Run :func:`check_env` over the wire on every environment ``target`` names
    (``http://host:port/NS/Name-v0``, ``http://host:port`` for all, or another registered
    scheme's URL); ``check_kwargs`` as for :func:`check_env` (``raise_on_failure`` defaults
    to False here: the reports say what failed)."""
    check_kwargs.setdefault("raise_on_failure", False)
    reports = []
    for name, make_client in check_targets(target):
        env = make_client()
        try:
            reports.append(check_env(env, fresh=make_client, name=name, **check_kwargs))
        finally:
            env.close()
    return reports


_CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_chat_model(
    seed: int = 0, *, corpus: str = "Say a or b. Say more. user assistant aaaa bbbb"
) -> Any:
    """A tiny randomly initialised Llama and a byte-level BPE tokenizer with a ChatML template:
    ``(model, tokenizer)`` for testing trainers and adapters on a CPU in a second, offline.

    Needs ``torch``, ``transformers`` and ``tokenizers`` (``rlenv[train]``). The vocabulary is
    trained on ``corpus`` (about 300 tokens), so its words come out as single tokens.
    """
    import torch
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<pad>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    raw.train_from_iterator([corpus] * 20, trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=raw, eos_token="<|im_end|>", pad_token="<pad>", chat_template=_CHATML
    )
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    return transformers.LlamaForCausalLM(config), tokenizer


def word_level_chat_tokenizer(vocab_size: int, words: Sequence[str] = ()) -> Any:
    """A tokenizer of exactly ``vocab_size`` ids with a ChatML template, for models of a real
    model's shape (Qwen2.5's 151,936) where the real tokenizer cannot be downloaded: ``<pad>``,
    ``<|im_start|>``, ``<|im_end|>`` (end of turn), ``<unk>``, the role names, then ``words``
    (so prompts made of them encode to themselves), then ``w0``, ``w1``, ... up to the size.
    Text is split on whitespace; decoding joins the words with spaces, so every id decodes to a
    word.

    Needs ``transformers`` and ``tokenizers`` (``rlenv[train]``).
    """
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    specials = ["<pad>", "<|im_start|>", "<|im_end|>", "<unk>"]
    vocabulary: dict[str, int] = {}
    for token in [*specials, "system", "user", "assistant", "tool", *words]:
        vocabulary.setdefault(token, len(vocabulary))
    filler = 0
    while len(vocabulary) < vocab_size:
        vocabulary.setdefault(f"w{filler}", len(vocabulary))
        filler += 1
    if len(vocabulary) > vocab_size:
        raise ValueError(f"vocab_size {vocab_size} is smaller than the {len(vocabulary)} tokens")
    raw = Tokenizer(models.WordLevel(vocab=vocabulary, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    raw.add_special_tokens(specials)
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=raw,
        eos_token="<|im_end|>",
        pad_token="<pad>",
        unk_token="<unk>",
        chat_template=_CHATML,
    )
