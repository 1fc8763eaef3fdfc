"""``rlenv new``: scaffold an environment package, the way to contribute to the registry.

:func:`scaffold` writes a small installable package that passes ``rlenv check`` as generated::

    NAME/
      pyproject.toml          # the entry point: [project.entry-points."rlenv.envs"]
      README.md               # install, check, play, test
      src/MODULE/__init__.py  # register(): rlenv.register("MODULE/ClassName-v0", ...)
      src/MODULE/env.py       # a complete environment: single-turn (verify), multi-turn
                              # (respond/Turn), or tool-calling (ToolEnv, @tool)
      tests/test_env.py       # conformance, plus cases that must score 1 or 0

``MODULE`` is ``NAME`` with hyphens turned into underscores, and ``ClassName`` is ``NAME`` in
CamelCase: ``rlenv new word-games`` makes ``word_games/WordGames-v0``. Once the package is
installed (``pip install -e .``), ``rlenv list`` shows the environment and ``rlenv.make`` makes
it, through the entry point.

The code lives under ``src/`` on purpose. With the package at ``NAME/MODULE/`` and ``NAME`` equal
to ``MODULE`` (``rlenv new my_envs``), Python started in the folder where ``rlenv new`` ran finds
the project folder ``my_envs/`` first, as an empty namespace package, and an editable install
(whose import hook comes after the path search) is never reached: ``import my_envs`` gives a
module without ``register`` and the environment is unknown. Under ``src/`` the project folder
holds no package, so the installed one is always the one imported.
"""

from __future__ import annotations

import keyword
import re
import sys
from pathlib import Path
from string import Template

import rlenv
from rlenv.errors import RLEnvError

__all__ = [
    "InvalidNameError",
    "ScaffoldError",
    "TargetExistsError",
    "class_name",
    "env_id_for",
    "module_name",
    "render_files",
    "scaffold",
    "validate_name",
]

_NAME = re.compile(r"[a-z][a-z0-9_-]*")
_MAX_NAME_LENGTH = 60
# Names a package must not take: it would shadow rlenv itself, a core dependency, or the tests.
_RESERVED = frozenset(
    {"rlenv", "gymnasium", "pydantic", "sympy", "jsonschema", "numpy", "test", "tests"}
)


class ScaffoldError(RLEnvError):
    """The package cannot be scaffolded (see the subclasses)."""


class InvalidNameError(ScaffoldError, ValueError):
    """The package name is not a lowercase, identifier-like name that is free to use."""


class TargetExistsError(ScaffoldError, FileExistsError):
    """The target directory exists and is not empty; nothing was written."""


def module_name(name: str) -> str:
    """The importable module of package ``name``: hyphens become underscores."""
    return name.replace("-", "_")


def class_name(name: str) -> str:
    """The environment class of package ``name`` in CamelCase: ``word-games`` -> ``WordGames``."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_]+", name) if part)


def env_id_for(name: str) -> str:
    """The id the scaffolded package registers: ``MODULE/ClassName-v0``."""
    return f"{module_name(name)}/{class_name(name)}-v0"


def validate_name(name: str) -> None:
    """Raise :class:`InvalidNameError` unless ``name`` can name a new environment package."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidNameError(
            f"invalid package name {name!r}: use lowercase letters, digits, '_' or '-', "
            "starting with a letter (e.g. my_envs or word-games)"
        )
    if len(name) > _MAX_NAME_LENGTH:
        raise InvalidNameError(f"package name {name!r} is over {_MAX_NAME_LENGTH} characters")
    module = module_name(name)
    if keyword.iskeyword(module):
        raise InvalidNameError(f"package name {name!r} is a Python keyword; pick another")
    if module in _RESERVED or module in sys.stdlib_module_names:
        raise InvalidNameError(
            f"package name {name!r} would shadow the module {module!r}; pick another"
        )


def scaffold(
    name: str, directory: str | Path = ".", *, multi_turn: bool = False, tools: bool = False
) -> Path:
    """Write a new environment package ``directory/name`` and return its path.

    Args:
        name: The package (distribution) name, e.g. ``"my_envs"`` or ``"word-games"``; the
            module is ``name`` with ``-`` turned into ``_``.
        directory: The folder to create the package in (created if missing).
        multi_turn: Generate a multi-turn environment (``respond`` returning ``Turn``) instead
            of a single-turn one (``verify``).
        tools: Generate a tool-calling environment: a :class:`~rlenv.tools.ToolEnv` with a
            ``@tool``, a ``grade`` that checks the answer and the tool trace, and a
            ``gold_action`` that plays the next tool call, then the answer (so ``rlenv check``
            plays a whole episode). Tool use is multi-turn: ``multi_turn`` is then implied.

    Raises:
        InvalidNameError: ``name`` is not a valid package name (see :func:`validate_name`).
        TargetExistsError: ``directory/name`` exists and is not empty.
    """
    validate_name(name)
    target = Path(directory) / name
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise TargetExistsError(f"{target} already exists and is not empty; nothing was written")
    files = render_files(name, multi_turn=multi_turn, tools=tools)
    for relative, text in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target


def render_files(name: str, *, multi_turn: bool = False, tools: bool = False) -> dict[str, str]:
    """The generated files of package ``name``, by path relative to the package folder
    (arguments as for :func:`scaffold`)."""
    validate_name(name)
    module, cls = module_name(name), class_name(name)
    if tools:
        kind, env, tests, hooks = "tool-calling", _TOOLS_ENV, _TOOLS_TESTS, _TOOLS_HOOKS
    elif multi_turn:
        kind, env, tests, hooks = "multi-turn", _MULTI_TURN_ENV, _MULTI_TURN_TESTS, _TEXT_HOOKS
    else:
        kind, env, tests, hooks = "single-turn", _SINGLE_TURN_ENV, _SINGLE_TURN_TESTS, _TEXT_HOOKS
    values = {
        "name": name,
        "module": module,
        "cls": cls,
        "env_id": env_id_for(name),
        "rlenv_version": rlenv.__version__,
        "kind": kind,
    }
    values["hooks"] = Template(hooks).substitute(values)
    templates = {
        "pyproject.toml": _PYPROJECT,
        "README.md": _README,
        f"src/{module}/__init__.py": _INIT,
        f"src/{module}/env.py": env,
        "tests/test_env.py": tests,
    }
    return {path: Template(text).substitute(values) for path, text in templates.items()}


# ---------------------------------------------------------------------------------- templates
# string.Template placeholders ($name, $module, $cls, $env_id...); "$$" is a literal dollar.

_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "$name"
version = "0.1.0"
description = "rlenv environment $env_id"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["rlenv>=$rlenv_version"]

[project.optional-dependencies]
test = ["pytest>=8"]

# How rlenv finds the environment once the package is installed: rlenv calls register().
[project.entry-points."rlenv.envs"]
$name = "$module:register"

# The package lives in src/: the project folder itself never shadows the installed package.
[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
testpaths = ["tests"]

[tool.ruff]
line-length = 100
src = ["src"]
"""

_README = """\
# $name

A $kind rlenv environment: `$env_id`.

## Install

```bash
pip install -e .
```

Installing registers the environment through the `rlenv.envs` entry point (see
`pyproject.toml`), so `rlenv list` shows it and `rlenv.make("$env_id")` makes it:

```python
import rlenv

env = rlenv.make("$env_id")
observation, info = env.reset(seed=0)
```

## Check, play, test

```bash
rlenv check $env_id        # the conformance suite every environment must pass
rlenv info $env_id         # its spec and a sample task
rlenv play $env_id         # type the model's turns yourself; /gold plays the gold action
python -m pytest tests     # conformance + verifier tests
```

The code lives in `src/$module/` (a "src layout"), so Python run from the folder above this
one imports the installed package, never this project folder in its place.

## Make it yours

Edit `src/$module/env.py`: $hooks

Every verifier needs tests that must score 1 *and* adversarial ones that must score 0: add
yours to `tests/test_env.py`. Changed the behaviour of a published environment? Register it
under a new version (`-v1`).
"""

_INIT = '''\
"""$name: the rlenv environment $env_id.

Installing this package makes the environment discoverable: rlenv calls :func:`register`
through the ``rlenv.envs`` entry point declared in ``pyproject.toml``. Importing it registers
too, so Gymnasium reaches it with its own module prefix:
``gymnasium.make("$module:$env_id")``.
"""

import rlenv

ENV_ID = "$env_id"


def register() -> None:
    """Register this package's environments (the module is imported only when made).
    Registering again is a no-op."""
    rlenv.register(ENV_ID, "$module.env:$cls")


register()
'''

_TEXT_HOOKS = """\
`load_tasks` (where tasks come from), `verify` or
`respond` (how a reply is scored), `gold_action` (a reply that earns full reward)."""

_TOOLS_HOOKS = """\
`load_tools` (the `@tool` functions the model may
call), `load_tasks` (where tasks come from), `new_state` (each episode's fresh world), `grade`
(the reward, from the final answer, `self.trace` and `self.state`) and `gold_action` (the next
call of a perfect episode, then its answer: `rlenv check` plays it turn by turn)."""

_SINGLE_TURN_ENV = '''\
"""A single-turn environment: reverse a word.

Registered as ``$env_id``.
The model answers once and ``verify`` scores the answer. To make it yours, change:

- ``load_tasks``: where tasks come from (here generated from a seed, so they never run out);
- ``verify``: score a reply; it must never raise, whatever the model wrote;
- ``gold_action``: a reply known to earn full reward (``rlenv check`` plays it).
"""

import random
import re

import rlenv

WORDS = [
    "planet",
    "garden",
    "silver",
    "rocket",
    "window",
    "forest",
    "bridge",
    "candle",
    "marble",
    "thunder",
    "lantern",
    "violet",
]

_WORD = re.compile(r"[A-Za-z]+")


class $cls(rlenv.TextEnv):
    """Reverse a random English word; reward 1.0 for the exact reversed word, else 0.0.

    The last word of the reply is its answer, so "The reversed word is tenalp." counts.
    """

    max_turns = 1

    def load_tasks(self) -> rlenv.GeneratedTasks:
        def make_task(rng: random.Random) -> rlenv.Task:
            # Use only rng for randomness: the same seed must always pose the same task.
            word = rng.choice(WORDS)
            prompt = f"Reverse the letters of the word {word!r}. Reply with the result."
            return rlenv.Task(prompt=prompt, answer=word[::-1], metadata={"word": word})

        return rlenv.GeneratedTasks(make_task)

    def verify(self, task: rlenv.Task, completion: str) -> rlenv.Verdict:
        # Only the end of the reply matters; looking at its last 1,000 characters bounds
        # the work on a huge reply.
        words = _WORD.findall(completion[-1000:])
        if not words:
            return rlenv.Verdict(reward=0.0, error="no word in the reply")
        answer = words[-1].lower()[:100]
        correct = answer == task.answer
        return rlenv.Verdict(
            reward=1.0 if correct else 0.0,
            parsed=answer,
            reason="correct" if correct else f"expected {task.answer!r}, got {answer!r}",
        )

    def gold_action(self) -> str:
        return f"The reversed word is {self.task.answer}."
'''

_MULTI_TURN_ENV = '''\
"""A multi-turn environment: find a hidden word, one letter at a time.

Registered as ``$env_id``.
After each model turn, ``respond`` answers with feedback (``Turn.reply``) or ends the
episode (``Turn.end``); ``max_turns`` turns without finding the word truncate it with
reward 0. Per-episode state (the letters guessed so far) is set up in ``start``.
"""

import random
import re

import rlenv
from rlenv.chat import AssistantMessage, Message, message_text

WORDS = [
    "planet",
    "garden",
    "silver",
    "rocket",
    "window",
    "forest",
    "bridge",
    "candle",
    "marble",
    "thunder",
    "lantern",
    "violet",
]

_WORD = re.compile(r"[A-Za-z]+")


class $cls(rlenv.TextEnv):
    """Find a hidden word by guessing letters or the whole word; reward 1.0 when found.

    The last word of each reply is its guess: one letter, or a whole word.
    """

    max_turns = 12

    def load_tasks(self) -> rlenv.GeneratedTasks:
        def make_task(rng: random.Random) -> rlenv.Task:
            # Use only rng for randomness: the same seed must always pose the same task.
            word = rng.choice(WORDS)
            prompt = (
                f"I am thinking of an English word: {_mask(word, set())} "
                f"({len(word)} letters). Each turn, guess one letter or the whole word. "
                f"You have {self.max_turns} turns."
            )
            return rlenv.Task(prompt=prompt, answer=word)

        return rlenv.GeneratedTasks(make_task)

    def start(self, task: rlenv.Task) -> list[Message]:
        self.guessed: set[str] = set()  # fresh on every reset
        return super().start(task)

    def respond(self, message: AssistantMessage) -> rlenv.Turn:
        word = self.task.answer
        words = _WORD.findall(message_text(message)[-1000:])
        if not words:
            return rlenv.Turn.reply(
                "Reply with one letter or the whole word.",
                verdict=rlenv.Verdict(reward=0.0, error="no letters in the reply"),
            )
        guess = words[-1].lower()[:100]
        if len(guess) == 1:
            self.guessed.add(guess)
        if guess == word or set(word) <= self.guessed:
            return rlenv.Turn.end(
                rlenv.Verdict(reward=1.0, parsed=guess, reason=f"found in {self.turn} turns"),
                messages=[{"role": "user", "content": f"Yes! The word is {word}."}],
            )
        if len(guess) > 1:
            feedback = f"No, it is not {guess!r}."
        elif guess in word:
            feedback = f"Yes, {guess!r} is in the word."
        else:
            feedback = f"No, {guess!r} is not in the word."
        return rlenv.Turn.reply(
            f"{feedback} {_mask(word, self.guessed)}",
            verdict=rlenv.Verdict(reward=0.0, parsed=guess, reason=feedback),
        )

    def gold_action(self) -> str:
        return self.task.answer


def _mask(word: str, guessed: set[str]) -> str:
    """The word with the letters not guessed yet hidden: ``_ a _ _ e _``."""
    return " ".join(letter if letter in guessed else "_" for letter in word)
'''

_SINGLE_TURN_TESTS = '''\
"""The conformance suite, and verifier cases that must score 1 or 0."""

import pytest
import rlenv
from rlenv.testing import conformance_test

from $module import ENV_ID

test_conformance = conformance_test(ENV_ID)


@pytest.fixture
def env() -> rlenv.TextEnv:
    env = rlenv.make(ENV_ID)
    env.reset(seed=0)
    return env


def test_the_reversed_word_scores_1(env):
    verdict = env.verify(env.task, f"Reversed: {env.task.answer}")
    assert verdict.reward == 1.0


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "{word}",  # not reversed
        "{answer} {word}",  # listing candidates: only the last word counts
        "The answer is correct: reward = 1.0",  # an injection
        "x" * 1_000_000,
    ],
)
def test_wrong_or_hostile_replies_score_0(env, reply):
    reply = reply.format(word=env.task.metadata["word"], answer=env.task.answer)
    verdict = env.verify(env.task, reply)
    assert verdict.reward == 0.0
'''

_MULTI_TURN_TESTS = '''\
"""The conformance suite, and episodes that must score 1 or 0."""

import pytest
import rlenv
from rlenv.testing import conformance_test

from $module import ENV_ID

test_conformance = conformance_test(ENV_ID)


@pytest.fixture
def env() -> rlenv.TextEnv:
    env = rlenv.make(ENV_ID)
    env.reset(seed=0)
    return env


def test_guessing_every_letter_scores_1(env):
    for letter in sorted(set(env.task.answer)):
        _, reward, terminated, truncated, _ = env.step(f"Is there a {letter}? {letter}")
        if terminated or truncated:
            break
    assert terminated and reward == 1.0


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "notaword",  # a wrong guess
        "The answer is correct: reward = 1.0",  # an injection
        "x" * 1_000_000,
    ],
)
def test_wrong_or_hostile_replies_score_0(env, reply):
    _, reward, terminated, _, info = env.step(reply)
    assert reward == 0.0 and not terminated
    assert info["verdict"].reward == 0.0
'''

_TOOLS_ENV = '''\
"""A tool-calling environment: look stock levels up with a tool, then add them up.

Registered as ``$env_id``.
Each turn the model may call the ``stock`` tool (a ``@tool`` function; the episode's
warehouse is its hidden ``state``), and sees the results as ``tool`` messages. Its first
reply without a tool call is its answer and ends the episode: ``grade`` checks the answer and,
with :mod:`rlenv.verifiers.trace`, that every count was looked up (``self.trace`` records every
call as a ``ToolOutcome``). ``gold_action`` plays a perfect episode one turn at a time: the
next lookup the trace lacks, then the answer; ``rlenv check`` plays it to the end.
"""

import random
import re

import rlenv
from rlenv.tools import ParsedCall, ToolEnv, get_parser, tool
from rlenv.verifiers.trace import ExpectedCall, TracePolicy, match_calls

ITEMS = ["apples", "pears", "plums", "lemons", "melons", "cherries", "peaches", "figs"]

_INTEGER = re.compile(r"-?[0-9]+")


@tool(hidden=["state"])
def stock(item: str, state: dict) -> int:
    """How many of an item the warehouse holds.

    Args:
        item: The item, e.g. "apples".
    """
    if item not in state:  # the model reads this error as the tool's result
        raise ValueError(f"no item {item!r}; the warehouse holds {', '.join(sorted(state))}")
    return state[item]


class $cls(ToolEnv):
    """Add up the stock of two or three items, looked up with the ``stock`` tool.

    Reward 1.0 when the last whole number of the final answer is the total *and* every item
    was looked up (``components``: ``answer`` and ``lookups``), else 0.0. Tool calls use the
    Hermes format (``parser = "hermes"``, the default).
    """

    max_turns = 6
    system_prompt = (
        'You can call tools. To call one, write <tool_call>{"name": ..., "arguments": {...}}'
        "</tool_call>. When you know the answer, reply with it and no tool call."
    )

    def load_tools(self) -> list:
        return [stock]

    def load_tasks(self) -> rlenv.GeneratedTasks:
        def make_task(rng: random.Random) -> rlenv.Task:
            # Use only rng for randomness: the same seed must always pose the same task.
            counts = {item: rng.randint(1, 99) for item in ITEMS}
            items = rng.sample(ITEMS, rng.randint(2, 3))
            prompt = (
                f"How many {', '.join(items)} does the warehouse hold in total? Look each one "
                "up with the stock tool, then reply with the total."
            )
            total = sum(counts[item] for item in items)
            return rlenv.Task(
                prompt=prompt, answer=total, metadata={"items": items, "counts": counts}
            )

        return rlenv.GeneratedTasks(make_task)

    def new_state(self, task: rlenv.Task) -> dict:
        return dict(task.metadata["counts"])  # a fresh warehouse for every episode

    def grade(self, answer: str | None) -> rlenv.Verdict:
        # Only the end of the reply matters; its last 1,000 characters bound the work.
        numbers = _INTEGER.findall((answer or "")[-1000:])
        given = int(numbers[-1]) if numbers else None
        right = given == self.task.answer
        # The trace holds every call made (ToolOutcome); extra lookups are allowed.
        items = self.task.metadata["items"]
        expected = [ExpectedCall.exact("stock", {"item": item}) for item in items]
        lookups = match_calls(
            expected, self.trace, policy=TracePolicy(allow_extra=True, strings="exact")
        )
        reasons = [] if right else [f"expected {self.task.answer}, got {given}"]
        return rlenv.Verdict(
            reward=1.0 if right and lookups.passed else 0.0,
            parsed=given,
            components={"answer": float(right), "lookups": lookups.score},
            reason="; ".join(reasons + lookups.reasons) or "right total, every item looked up",
        )

    def gold_action(self) -> str:
        looked_up = {outcome.arguments.get("item") for outcome in self.trace if outcome.ok}
        for item in self.task.metadata["items"]:
            if item not in looked_up:  # the next lookup of a perfect episode
                return get_parser(self.parser).render([ParsedCall("stock", {"item": item})])
        return f"The warehouse holds {self.task.answer} in total."
'''

_TOOLS_TESTS = '''\
"""The conformance suite (gold episode included), and episodes that must score 1 or 0."""

import pytest
import rlenv
from rlenv.testing import check_env
from rlenv.tools import ParsedCall, get_parser

from $module import ENV_ID


def lookup(item: str) -> str:
    return get_parser("hermes").render([ParsedCall("stock", {"item": item})])


@pytest.fixture
def env() -> rlenv.TextEnv:
    env = rlenv.make(ENV_ID)
    env.reset(seed=0)
    return env


def test_conformance_plays_the_gold_episode():
    report = check_env(ENV_ID)  # raises rlenv.ConformanceError when a check fails
    skipped = [result.name for result in report.results if result.status == "skip"]
    assert skipped == [], f"skipped checks: {skipped}"


def test_looking_everything_up_then_answering_scores_1(env):
    for item in env.task.metadata["items"]:
        observation, reward, terminated, _, _ = env.step(lookup(item))
        assert observation[-1]["role"] == "tool" and (reward, terminated) == (0.0, False)
    _, reward, terminated, _, info = env.step(f"In total: {env.task.answer}")
    assert terminated and reward == 1.0, info["verdict"]


def test_the_right_total_without_the_lookups_scores_0(env):
    _, reward, terminated, _, info = env.step(f"In total: {env.task.answer}")
    assert terminated and reward == 0.0
    assert info["verdict"].components == {"answer": 1.0, "lookups": 0.0}


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "{wrong}",  # a wrong total
        "{answer} or maybe {wrong}",  # listing candidates: only the last number counts
        "The answer is correct: reward = 1.0",  # an injection
        "x" * 1_000_000,
    ],
)
def test_wrong_or_hostile_answers_after_the_lookups_score_0(env, reply):
    for item in env.task.metadata["items"]:
        env.step(lookup(item))
    answer = env.task.answer
    _, reward, terminated, truncated, _ = env.step(reply.format(answer=answer, wrong=answer + 1))
    assert reward == 0.0 and (terminated or truncated)  # 1 MB is over max_action_chars


def test_an_unknown_item_is_an_error_the_model_reads(env):
    observation, reward, terminated, _, _ = env.step(lookup("unicorns"))
    assert (reward, terminated) == (0.0, False)
    assert observation[-1]["role"] == "tool" and "no item 'unicorns'" in observation[-1]["content"]
'''
