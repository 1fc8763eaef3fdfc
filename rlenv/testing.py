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
"""

from __future__ import annotations

import hashlib
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

import numpy as np
from gymnasium.utils.env_checker import check_env as gymnasium_check_env

from rlenv.chat import is_valid_message
from rlenv.env import TextEnv
from rlenv.errors import ConformanceError, EpisodeFinishedError, ResetNeededError
from rlenv.spaces import HOSTILE_TEXTS
from rlenv.verdict import Verdict

__all__ = [
    "CheckResult",
    "ConformanceReport",
    "check_env",
    "conformance_test",
    "hostile_actions",
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
) -> ConformanceReport:
    """Run the conformance suite on ``env`` (an instance or a registered id).

    Args:
        env: The environment, or the id of a registered one.
        seeds: Seeds used by the determinism and gold-answer checks.
        n_actions: How many hostile actions to step (across as many episodes as they take).
        cross_process: Also compare first observations with a fresh Python process.
        raise_on_failure: Raise :class:`~rlenv.errors.ConformanceError` (carrying the report)
            when a check fails; otherwise just return the report.

    Returns:
        The :class:`ConformanceReport`.
    """
    if isinstance(env, str):
        from rlenv.registry import make

        env = make(env)
    if not isinstance(env, TextEnv):
        raise TypeError(f"check_env needs a rlenv.TextEnv, got {type(env).__name__}")
    name = env.spec.id if env.spec is not None else type(env).__name__
    report = ConformanceReport(name)
    deterministic = not (env.spec is not None and env.spec.nondeterministic)

    # (name, check, why it does not run; None: it runs). A check returns a skip reason or None.
    nondeterministic = None if deterministic else "the env is registered nondeterministic"
    checks: list[tuple[str, Callable[[], str | None], str | None]] = [
        ("gymnasium check_env", lambda: _check_gymnasium(env), None),
        ("reset determinism", lambda: _check_reset_determinism(env, seeds), nondeterministic),
        ("step determinism", lambda: _check_step_determinism(env, seeds), nondeterministic),
        (
            "cross-process determinism",
            lambda: _check_cross_process(env, seeds),
            nondeterministic or (None if cross_process else "turned off (cross_process=False)"),
        ),
        ("hostile actions", lambda: _check_hostile_actions(env, n_actions), None),
        ("finished episode", lambda: _check_finished_episode(env), None),
        ("gold answer", lambda: _check_gold(env, seeds), None),
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
    for seed in seeds:
        first, info_1 = env.reset(seed=seed)
        task = env.task
        again, info_2 = env.reset(seed=seed)
        if first != again or info_1.get("task_id") != info_2.get("task_id") or env.task != task:
            _fail(f"reset(seed={seed}) posed different tasks on two calls")
        task_id = info_1.get("task_id")
        by_id, info_3 = env.reset(options={"task_id": task_id})
        if by_id != first or info_3.get("task_id") != task_id or env.task != task:
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
        gold = env.gold_action()
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


def _check_finished_episode(env: TextEnv) -> None:
    env.reset(seed=0)
    for _ in range(env.max_turns):
        _, _, terminated, truncated, _ = env.step("")
        if terminated or truncated:
            break
    else:
        _fail(f"empty replies did not end the episode within max_turns={env.max_turns}")
    with _expect(EpisodeFinishedError, "step() after the end of an episode"):
        env.step("one more")
    if env.spec is not None:
        fresh = env.spec.make(disable_env_checker=True).unwrapped
        with _expect(ResetNeededError, "step() before the first reset()"):
            fresh.step("hello")
        fresh.close()


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
