"""The reasoning-gym bridge: every reasoning-gym dataset as an rlenv environment.

`reasoning-gym <https://github.com/open-thought/reasoning-gym>`_ (Stojanovski et al., 2025,
arXiv:2505.24760) is a library of about a hundred procedural task generators, each with its
own scorer. Each dataset ``name`` is registered as ``reasoning_gym/<name>-v0`` (the namespace
says where the task comes from; the name is reasoning-gym's own, so
``rlenv.make("reasoning_gym/chain_sum-v0", min_terms=3)`` is
``reasoning_gym.create_dataset("chain_sum", min_terms=3)``).

- **kwargs** are the dataset's config fields (its dataclass, minus ``seed`` and ``size``),
  checked by ``rlenv.make`` like any other environment's: a misspelt one raises
  :class:`~rlenv.errors.EnvArgumentError` naming the valid ones; the config's own
  ``validate()`` then checks the values.
- **Seeding**: task ``seed-N`` is ``create_dataset(name, seed=N, size=1, **config)[0]``;
  ``reset(seed=s)`` draws ``N`` from the environment's generator, so the same seed poses the
  same task in every process.
- **Scoring** follows reasoning-gym's own recipe (``reasoning_gym/utils.py``): the default
  system prompt ``SYSTEM_PROMPTS["default"]`` asks for ``<answer>...</answer>``;
  ``extract_answer`` takes the *last* such tag; the dataset's ``score_answer(answer, entry)``
  gives the reward in [0, 1] (some datasets pay partial credit, e.g. ``len(gold)/len(answer)``
  when the answer contains the gold answer: ``ProceduralDataset.score_answer`` in
  ``reasoning_gym/dataset.py``). No tag, or an answer over ``max_answer_chars``, scores 0
  without calling the scorer. A scorer that raises or returns something outside [0, 1] gives
  ``Verdict(scored=False)`` with the reason: "could not judge" is never "judged 0".
- **Gold action**: ``<answer>{entry["answer"]}</answer>``.

Registration is cheap: the dataset names are listed here (reasoning-gym 0.1.25), nothing is
imported until an environment is made, and nothing is registered when reasoning-gym is not
installed (``pip install 'rlenv[reasoning-gym]'``), so ``rlenv list`` and
``rlenv check --all`` only show environments that run. Datasets left out are in
:data:`EXCLUDED` with the reason.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import difflib
import functools
import importlib.util
import inspect
import io
import math
import typing
from typing import Any

import numpy as np

from rlenv.env import TextEnv
from rlenv.errors import EnvArgumentError, TaskNotFoundError
from rlenv.tasks import Task, TaskSource
from rlenv.verdict import Verdict

__all__ = [
    "DATASETS",
    "EXCLUDED",
    "HASH_DEPENDENT",
    "NAMESPACE",
    "ReasoningGymEnv",
    "env_id",
    "register_all",
]

NAMESPACE = "reasoning_gym"
SOURCE = "github.com/open-thought/reasoning-gym"
INSTALL_HINT = "pip install 'rlenv[reasoning-gym]'"

_BY_CATEGORY = {
    "algebra": "complex_arithmetic intermediate_integration polynomial_equations "
    "polynomial_multiplication simple_equations simple_integration",
    "algorithmic": "ab base_conversion binary_alternation binary_matrix caesar_cipher "
    "count_primes cryptarithm game_of_life group_anagrams isomorphic_strings jugs "
    "letter_counting letter_jumble manipulate_matrix number_filtering number_sorting "
    "palindrome_generation palindrome_partitioning pool_matrix ransom_note rotate_matrix "
    "rotten_oranges sentence_reordering spell_backward spiral_matrix string_insertion "
    "string_manipulation string_splitting string_synthesis word_ladder "
    "word_sequence_reversal word_sorting",
    "arc": "arc_1d arc_agi rearc",
    "arithmetic": "basic_arithmetic bitwise_arithmetic calendar_arithmetic chain_sum count_bits "
    "decimal_arithmetic decimal_chain_sum dice fraction_simplification gcd gsm_symbolic lcm "
    "leg_counting number_format power_function prime_factorization products time_intervals",
    "code": "bf",
    "cognition": "color_cube_rotation figlet_font modulo_grid needle_haystack number_sequence "
    "rectangle_count",
    "games": "countdown emoji_mystery futoshiki kakurasu knight_swap mahjong_puzzle maze "
    "mini_sudoku n_queens puzzle24 sokoban sudoku survo tower_of_hanoi tsumego",
    "geometry": "advanced_geometry simple_geometry",
    "graphs": "course_schedule family_relationships largest_island path_star quantum_lock "
    "shortest_path",
    "induction": "acre list_functions",
    "logic": "aiw circuit_logic knights_knaves self_reference syllogism zebra_puzzles",
    "probability": "coin_flip",
}

DATASETS: dict[str, str] = {
    name: category for category, names in _BY_CATEGORY.items() for name in names.split()
}
"""The registered reasoning-gym datasets (reasoning-gym 0.1.25), by name, with their category."""

EXCLUDED: dict[str, str] = {
    "composite": "a mixture of other datasets configured by a list of DatasetSpec; make each "
    "part as its own environment instead",
    "codeio": "each reset runs its data's code snippets in-process with exec "
    "(reasoning_gym/code/codeio.py, _generate_io_pair; its docstring: 'executing arbitrary code "
    "snippets ... transformed by an LLM'): some write files into the working directory "
    "(simulation_data.txt, file_97.txt) while posing a task",
    "game_of_life_halting": "its score_answer pays 1.0 for any non-empty answer "
    '(bool(answer) == bool(entry["answer"]) compares two non-empty strings: '
    "reasoning_gym/algorithmic/game_of_life_halting.py), so the reward can be faked",
    "boxnet": "no reference answer (answer is None): no gold action to check the scorer with",
    "graph_color": "no reference answer (answer is None): no gold action to check the scorer with",
    "propositional_logic": "no reference answer (answer is None): no gold action to check the "
    "scorer with",
    "rubiks_cube": "no reference answer (answer is None): no gold action to check the scorer with",
    "rush_hour": "no reference answer (answer is None): no gold action to check the scorer with",
}
"""reasoning-gym 0.1.25 datasets that are not registered, with the reason."""

HASH_DEPENDENT: dict[str, str] = {
    "bf": "reasoning_gym/code/bf.py",
    "isomorphic_strings": "reasoning_gym/algorithmic/isomorphic_strings.py (rng.choice(list(a "
    "set of letters)))",
    "knight_swap": "reasoning_gym/games/knight_swap.py (solve_swap's search iterates frozensets "
    "of squares: another solution, sometimes another board)",
    "polynomial_multiplication": "reasoning_gym/algebra/polynomial_multiplication.py",
    "ransom_note": "reasoning_gym/algorithmic/ransom_note.py",
    "word_ladder": "reasoning_gym/algorithmic/word_ladder.py (sets of words)",
}
"""Datasets whose generator draws from sets of strings, whose order depends on Python's hash
seed: the same seed poses the same task within a process, and in another process only when
``PYTHONHASHSEED`` is set to the same value. They are registered ``nondeterministic=True`` (so
``rlenv check`` skips the determinism checks and says why); set ``PYTHONHASHSEED`` (e.g. 0) for
reproducible tasks. Found by the cross-process check of ``rlenv check`` (a fresh process posed
other tasks for the same seeds)."""

_RESERVED_FIELDS = ("seed", "size")  # the task id gives the seed; one entry per task
_TEXT_ENV_PARAMETERS = {
    name: parameter
    for name, parameter in inspect.signature(TextEnv.__init__).parameters.items()
    if name != "self"
}


def env_id(dataset: str) -> str:
    """The rlenv id of a reasoning-gym dataset: ``reasoning_gym/<name>-v0``."""
    return f"{NAMESPACE}/{dataset}-v0"


def _import_reasoning_gym() -> Any:
    try:
        import reasoning_gym
    except ImportError as error:
        raise ImportError(
            f"the reasoning-gym environments need reasoning-gym: {INSTALL_HINT} ({error})"
        ) from error
    return reasoning_gym


def _dataset_classes(dataset: str) -> tuple[type, type]:
    """reasoning-gym's (dataset class, config dataclass) for ``dataset``."""
    _import_reasoning_gym()
    from reasoning_gym.factory import DATASETS as registered

    if dataset not in registered:
        raise EnvArgumentError(
            f"reasoning-gym has no dataset {dataset!r} (installed version: "
            f"{_installed_version()}); rlenv registers those of reasoning-gym 0.1.25"
        )
    return registered[dataset]


def _installed_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("reasoning-gym")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def config_fields(dataset: str) -> dict[str, dataclasses.Field]:
    """The config fields an environment of ``dataset`` accepts as kwargs (not seed, size)."""
    _, config_class = _dataset_classes(dataset)
    return {
        field.name: field
        for field in dataclasses.fields(config_class)
        if field.init and field.name not in _RESERVED_FIELDS
    }


class _EntrySource(TaskSource):
    """Task ``seed-N`` is entry 0 of the dataset built with ``seed=N, size=1``.

    This is reasoning-gym's own way to get a reproducible item (``create_dataset(name, seed=N,
    size=1)[0]``); several datasets draw from ``seed`` in ``__init__`` as well as in
    ``__getitem__`` (``list_functions``, ``acre``), so the dataset is built per task rather
    than re-seeded. The last tasks built are cached.
    """

    prefix = "seed-"

    def __init__(self, dataset: str, config: dict[str, Any]):
        self.dataset = dataset
        self.config = config
        self.dataset_class, self.config_class = _dataset_classes(dataset)

    def sample(self, rng: np.random.Generator) -> Task:
        return self.build(int(rng.integers(0, 2**32)))

    def get(self, task_id: str) -> Task:
        digits = task_id[len(self.prefix) :] if task_id.startswith(self.prefix) else ""
        if not digits.isdigit() or int(digits) >= 2**32:
            raise TaskNotFoundError(
                f"task id {task_id!r} does not name a reasoning-gym task; ids look like "
                f"'seed-N' with N the dataset seed below 2**32 (take it from info['task_id'])"
            )
        return self.build(int(digits))

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one source per env; bounded
    def _entry(self, seed: int) -> dict[str, Any]:
        config = self.config_class(**copy.deepcopy(self.config), seed=seed, size=1)
        # Some generators print (bf's compiler writes a '.' per program): keep stdout clean.
        with contextlib.redirect_stdout(io.StringIO()):
            return self.dataset_class(config=config)[0]

    def build(self, seed: int) -> Task:
        entry = self._entry(seed)
        return Task(
            id=f"{self.prefix}{seed}",
            prompt=entry["question"],
            answer=entry["answer"],
            metadata={
                "dataset": self.dataset,
                "seed": seed,
                "config": self.config,
                "entry_metadata": entry.get("metadata", {}),
            },
        )

    def __repr__(self) -> str:
        return f"reasoning-gym {self.dataset!r} {self.config}"


class ReasoningGymEnv(TextEnv):
    """A reasoning-gym dataset as a single-turn environment, scored by its own
    ``score_answer`` (see the module docstring and docs/environments/reasoning-gym.md).

    Args:
        dataset: reasoning-gym's dataset name (``"chain_sum"``).
        max_answer_chars: An extracted answer longer than this scores 0 without reaching the
            scorer (which may parse it with sympy or regexes in this process).
        partial_credit: ``True`` (default): the reward is reasoning-gym's score, partial credit
            included (an answer that merely contains the gold one, or is well-formed but wrong,
            can earn a little: up to 0.15 for the prompt echoed back, measured in the tests).
            ``False``: 1.0 only for a score of 1.0, else 0.0 (the score stays in
            ``verdict.components["reasoning_gym"]``).
        **kwargs: The dataset's config fields (its dataclass minus ``seed`` and ``size``),
            then :class:`~rlenv.TextEnv`'s own (``system_prompt``, ``split``...). The default
            system prompt is reasoning-gym's ``SYSTEM_PROMPTS["default"]``.
    """

    def __init__(
        self,
        dataset: str,
        *,
        max_answer_chars: int = 10_000,
        partial_credit: bool = True,
        **kwargs: Any,
    ) -> None:
        env_kwargs = {key: kwargs.pop(key) for key in list(kwargs) if key in _TEXT_ENV_PARAMETERS}
        fields = config_fields(dataset)
        unknown = [key for key in kwargs if key not in fields]
        if unknown:
            close = difflib.get_close_matches(unknown[0], list(fields), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise EnvArgumentError(
                f"{env_id(dataset)} has no parameter {unknown[0]!r}.{hint} Its reasoning-gym "
                f"config accepts: {', '.join(sorted(fields)) or '(nothing)'}; and TextEnv's: "
                f"{', '.join(sorted(_TEXT_ENV_PARAMETERS))}"
            )
        if not isinstance(max_answer_chars, int) or max_answer_chars < 1:
            raise ValueError(f"max_answer_chars must be a positive integer: {max_answer_chars!r}")
        dataset_class, config_class = _dataset_classes(dataset)
        try:  # the config's own validation, once, before any task is built
            config = config_class(**copy.deepcopy(kwargs), seed=0, size=1)
            if hasattr(config, "validate"):
                config.validate()
        except (AssertionError, ValueError, TypeError) as error:
            raise EnvArgumentError(
                f"{env_id(dataset)}: reasoning-gym rejected the config {kwargs}: "
                f"{type(error).__name__}: {error}"
            ) from None
        self.dataset = dataset
        self.config = dict(kwargs)
        self.max_answer_chars = max_answer_chars
        self.partial_credit = bool(partial_credit)
        self._scorer = dataset_class(config=config).score_answer
        if env_kwargs.get("system_prompt") is None:
            from reasoning_gym.utils import SYSTEM_PROMPTS

            env_kwargs["system_prompt"] = SYSTEM_PROMPTS["default"]
        super().__init__(**env_kwargs)

    def load_tasks(self) -> TaskSource:
        return _EntrySource(self.dataset, self.config)

    def verify(self, task: Task, completion: str) -> Verdict:
        from reasoning_gym.utils import extract_answer

        answer = extract_answer(completion)
        if answer is None:
            return Verdict(reward=0.0, error="no <answer>...</answer> tag in the reply")
        if len(answer) > self.max_answer_chars:
            return Verdict(
                reward=0.0,
                parsed=answer[:200],
                error=f"answer too long: {len(answer)} characters (max_answer_chars="
                f"{self.max_answer_chars})",
            )
        entry = {
            "question": _prompt_text(task),
            "answer": task.answer,
            "metadata": copy.deepcopy(task.metadata.get("entry_metadata", {})),
        }
        try:
            score = self._scorer(answer, entry)
            reward = float(score)
        except Exception as error:  # a scorer bug: "could not judge", not "judged 0"
            return Verdict(
                reward=0.0,
                parsed=answer,
                scored=False,
                error=f"reasoning-gym's {self.dataset} score_answer failed: "
                f"{type(error).__name__}: {str(error)[:300]}",
            )
        if not (math.isfinite(reward) and 0.0 <= reward <= 1.0):
            return Verdict(
                reward=0.0,
                parsed=answer,
                scored=False,
                error=f"reasoning-gym's {self.dataset} score_answer returned {score!r:.80}, "
                "not a score in [0, 1]",
            )
        return Verdict(
            reward=reward if self.partial_credit or reward == 1.0 else 0.0,
            parsed=answer,
            components={"reasoning_gym": reward},
            reason=f"reasoning-gym {self.dataset} score_answer: {reward:g}",
        )

    def gold_action(self) -> str | None:
        if self._task is None or self._task.answer is None:
            return None
        return f"<answer>{self._task.answer}</answer>"


def _prompt_text(task: Task) -> str:
    users = [m.get("content") for m in task.prompt if m.get("role") == "user"]
    return str(users[-1]) if users else ""


# ----------------------------------------------------------------------------- registration


class _DatasetFactory:
    """What ``reasoning_gym/<name>-v0`` makes: ``ReasoningGymEnv(name, **kwargs)``.

    One per dataset, so that ``rlenv list`` shows a line per dataset (its ``__doc__``) without
    importing reasoning-gym, and ``rlenv.make`` checks kwargs against the dataset's own config
    (``__signature__``, built on first use).
    """

    max_turns = 1

    def __init__(self, dataset: str) -> None:
        self.dataset = dataset
        self.__name__ = self.__qualname__ = dataset
        self.__module__ = __name__
        self.__doc__ = (
            f"reasoning-gym {DATASETS.get(dataset, '?')}/{dataset}, scored by its own "
            f"score_answer (source: {SOURCE})."
        )

    def __call__(self, **kwargs: Any) -> ReasoningGymEnv:
        return ReasoningGymEnv(self.dataset, **kwargs)

    @functools.cached_property
    def __signature__(self) -> inspect.Signature:  # type: ignore[override]
        _, config_class = _dataset_classes(self.dataset)
        hints = _config_hints(config_class)
        parameters = [
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=_field_default(field),
                annotation=hints.get(name, inspect.Parameter.empty),
            )
            for name, field in config_fields(self.dataset).items()
        ]
        own = inspect.signature(ReasoningGymEnv.__init__).parameters
        parameters += [own["max_answer_chars"], own["partial_credit"]]
        parameters += [
            parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for parameter in _TEXT_ENV_PARAMETERS.values()
            if parameter.name not in {p.name for p in parameters}
        ]
        return inspect.Signature(parameters)

    def __repr__(self) -> str:
        return f"<reasoning-gym dataset {self.dataset!r}>"


def _config_hints(config_class: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(config_class)
    except Exception:  # an annotation that cannot be resolved is simply not checked
        return {}


def _field_default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return inspect.Parameter.empty


@functools.cache
def _factory(dataset: str) -> _DatasetFactory:
    return _DatasetFactory(dataset)


def __getattr__(name: str) -> _DatasetFactory:
    """``rlenv.envs.reasoning_gym:<dataset>``, the entry point each id is registered with."""
    if name in DATASETS:
        return _factory(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def register_all() -> int:
    """Register ``reasoning_gym/<name>-v0`` for every dataset in :data:`DATASETS`, if
    reasoning-gym is installed (checked without importing it); return how many."""
    from rlenv.registry import missing_namespace, register

    if importlib.util.find_spec("reasoning_gym") is None:
        missing_namespace("reasoning_gym", "reasoning-gym is not installed (pip install "
                          "'rlenv[reasoning-gym]')")  # fmt: skip
        return 0

    for dataset in DATASETS:
        register(
            env_id(dataset),
            f"{__name__}:{dataset}",
            nondeterministic=dataset in HASH_DEPENDENT,
        )
    return len(DATASETS)
