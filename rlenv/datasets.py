"""Any dataset as an environment: rows of (question, answer) plus a verifier, no subclass.

::

    import rlenv

    env = rlenv.DatasetEnv("examples/data/arith.jsonl", verifier="math")
    observation, info = env.reset(seed=0)
    observation, reward, terminated, truncated, info = env.step(env.gold_action())
    print(info["task_id"], reward)  # a content hash, 1.0

:class:`DatasetEnv` reads rows from a list of dicts, a local JSONL / JSON / CSV / parquet file,
or a Hugging Face dataset (a hub name and ``revision``, or a downloaded dataset folder, both
through ``datasets.load_dataset``); maps columns to the prompt, the reference answer, tests,
tools, choices and metadata; and scores replies with a verifier named ``"math"``, ``"code"``,
``"exact"``, ``"regex"`` or ``"choice"``, or any callable ``(completion, task) -> Verdict``
(compositions from :mod:`rlenv.verifiers.compose` included). Task ids are content hashes, so
they are the same in every process; ``split="train"``/``"test"`` is the content split every
rlenv environment has (:func:`rlenv.tasks.split_of`); ``max_turns > 1`` lets a wrong answer try
again with feedback, for a decaying reward (:class:`rlenv.retry.Retry`).

:func:`register_dataset` registers one under an id in one call, and an id of the form
``dataset:PATH`` (or ``dataset:OWNER/NAME@REVISION`` for the hub) works wherever an id does:
``rlenv info dataset:data.jsonl --verifier exact``, ``rlenv eval dataset:... --model M``.

Only the standard library is imported here; ``datasets`` (hub names and dataset folders) and
``pyarrow`` (parquet) are imported when a source needs them: ``pip install 'rlenv[datasets]'``.
See ``docs/environments/datasets.md``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rlenv.chat import AssistantMessage, message_text
from rlenv.env import TextEnv, Turn
from rlenv.errors import RLEnvError
from rlenv.tasks import Task, TaskList
from rlenv.verdict import Verdict

__all__ = [
    "BENCHMARK_SAMPLE_ENV_VAR",
    "DATASET_ID_PREFIX",
    "VERIFIERS",
    "DatasetEnv",
    "DatasetError",
    "DatasetFieldError",
    "DatasetUnavailableError",
    "MissingDependencyError",
    "hub_reachable",
    "load_rows",
    "register_dataset",
    "resolve_dataset_id",
    "sample_setting",
]

DATASET_ID_PREFIX = "dataset:"
VERIFIERS = ("math", "code", "exact", "regex", "choice")
"""The verifiers :class:`DatasetEnv` knows by name; any callable verifier works too."""

_FILE_FORMATS = {".jsonl": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
# Columns tried, in order, when a field is not named.
_PROMPT_COLUMNS = ("prompt", "question", "problem", "input")
_ANSWER_COLUMNS = ("answer", "target", "label")
_TESTS_COLUMNS = ("tests", "test", "test_list")
_SOLUTION_COLUMNS = ("solution", "canonical_solution")

_BOX_INSTRUCTION = "Put your final answer in \\boxed{}."
_INSTRUCTIONS = {
    "math": _BOX_INSTRUCTION,
    "exact": _BOX_INSTRUCTION,
    "regex": _BOX_INSTRUCTION,
    "choice": "Answer with the letter of the correct option.",
    "code": "Reply with your complete solution in a single ```python code block.",
}
_WRONG = "That is not correct. Try again."
_LAST_WRONG = "That is not correct, and that was your last attempt."
_MAX_FEEDBACK_CHARS = 800


class DatasetError(RLEnvError, ValueError):
    """A dataset cannot be turned into tasks (a bad source, a malformed row); says which."""


class DatasetFieldError(DatasetError):
    """A field mapping names a column the rows do not have; the message names the field, the
    row and the columns found."""


class DatasetUnavailableError(RLEnvError, OSError):
    """``datasets.load_dataset`` could not load a hub dataset (offline, unknown name or
    revision); the message names the dataset and how to get it onto this machine."""


class MissingDependencyError(RLEnvError, ImportError):
    """An optional package a source needs is not installed; the message says what to install."""


# ----------------------------------------------------------------------------- loading rows


def load_rows(
    source: str | os.PathLike[str] | Sequence[Mapping[str, Any]],
    *,
    revision: str | None = None,
    config: str | None = None,
    data_split: str = "train",
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows of ``source`` as dicts, and its provenance (what was loaded, from where).

    ``source`` is a list of dicts; the path of a ``.jsonl``, ``.json`` (an array or JSON lines),
    ``.csv`` or ``.parquet`` file; a folder holding a dataset (as ``huggingface-cli download``
    writes one); or a Hugging Face hub name (``"openai/gsm8k"``) loaded with
    ``datasets.load_dataset(source, config, split=data_split, revision=revision)``. Files are
    read with the standard library (``pyarrow`` for parquet); folders and hub names go
    through ``datasets``.
    """
    if not isinstance(source, (str, os.PathLike)):
        if not isinstance(source, Sequence):
            raise DatasetError(
                "source must be a list of dicts, a file or folder path, or a Hugging Face "
                f"dataset name; got {type(source).__name__}"
            )
        rows = [_as_row(row, index, "the list") for index, row in enumerate(source)]
        return rows, {"kind": "rows", "rows": len(rows)}
    path = Path(source)
    if path.is_file():
        return _load_file(path)
    if path.is_dir():
        rows = _load_with_datasets(str(path), revision, config, data_split)
        provenance = {"kind": "folder", "path": str(path.resolve()), "data_split": data_split}
        return rows, {**provenance, "config": config, "rows": len(rows)}
    if _file_format(path) is not None or str(source).startswith((".", "/", "~")):
        raise DatasetError(f"no such dataset file: {source} (from {Path.cwd()})")
    rows = _load_with_datasets(str(source), revision, config, data_split)
    provenance = {"kind": "hub", "name": str(source), "revision": revision, "config": config}
    return rows, {**provenance, "data_split": data_split, "rows": len(rows)}


def _file_format(path: Path) -> str | None:
    return _FILE_FORMATS.get(path.suffix.lower())


def _as_row(row: Any, index: int, where: str) -> dict[str, Any]:
    if not isinstance(row, Mapping):
        raise DatasetError(f"row {index} of {where} is a {type(row).__name__}, not an object")
    return dict(row)


_file_cache: dict[tuple[str, int, int], tuple[list[dict[str, Any]], dict[str, Any]]] = {}


def _load_file(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A local file's rows, cached by path, size and modification time."""
    kind = _file_format(path)
    if kind is None:
        raise DatasetError(
            f"{path}: unknown file type {path.suffix!r}; use .jsonl, .json, .csv or .parquet "
            "(or a dataset folder)"
        )
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _file_cache:
        data = path.read_bytes()
        rows = _PARSERS[kind](path, data)
        provenance = {
            "kind": "file",
            "path": key[0],
            "format": kind,
            "sha256": hashlib.sha256(data).hexdigest(),
            "rows": len(rows),
        }
        if len(_file_cache) >= 16:
            _file_cache.clear()
        _file_cache[key] = (rows, provenance)
    rows, provenance = _file_cache[key]
    return [dict(row) for row in rows], dict(provenance)


def _parse_jsonl(path: Path, data: bytes) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise DatasetError(f"{path}:{number}: not JSON: {error}") from None
        rows.append(_as_row(value, number, f"{path} (line)"))
    return rows


def _parse_json(path: Path, data: bytes) -> list[dict[str, Any]]:
    try:
        value = json.loads(data.decode("utf-8"))
    except json.JSONDecodeError:
        return _parse_jsonl(path, data)  # JSON lines under a .json name
    if not isinstance(value, list):
        raise DatasetError(f"{path}: expected a JSON array of objects (or JSON lines)")
    return [_as_row(row, index, str(path)) for index, row in enumerate(value)]


def _parse_csv(path: Path, data: bytes) -> list[dict[str, Any]]:
    reader = csv.DictReader(data.decode("utf-8-sig").splitlines())
    return [dict(row) for row in reader]


def _parse_parquet(path: Path, data: bytes) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise MissingDependencyError(
            f"reading {path} needs pyarrow: pip install 'rlenv[datasets]'  (or: pip install "
            "pyarrow)"
        ) from None
    return parquet.read_table(path).to_pylist()


_PARSERS: dict[str, Callable[[Path, bytes], list[dict[str, Any]]]] = {
    "jsonl": _parse_jsonl,
    "json": _parse_json,
    "csv": _parse_csv,
    "parquet": _parse_parquet,
}


def _load_with_datasets(
    name: str, revision: str | None, config: str | None, data_split: str
) -> list[dict[str, Any]]:
    """``datasets.load_dataset(name, config, split=data_split, revision=revision)`` as rows;
    a failure says how to get the dataset onto this machine."""
    try:
        import datasets
    except ImportError:
        raise MissingDependencyError(
            f"loading the dataset {name!r} needs the datasets library: pip install "
            "'rlenv[datasets]'  (a local .jsonl, .json or .csv file needs nothing)"
        ) from None
    try:
        loaded = datasets.load_dataset(name, config, split=data_split, revision=revision)
    except Exception as error:
        offline = os.environ.get("HF_DATASETS_OFFLINE") or os.environ.get("HF_HUB_OFFLINE")
        why = (
            "HF_DATASETS_OFFLINE/HF_HUB_OFFLINE is set: only cached datasets load. "
            if offline
            else "No hub reachable? "
        )
        pinned = f" --revision {revision}" if revision else ""
        raise DatasetUnavailableError(
            f"could not load the dataset {name!r} (config {config!r}, split {data_split!r}, "
            f"revision {revision!r}) with datasets.load_dataset: {type(error).__name__}: "
            f"{str(error)[:300]}\n{why}"
            "On a machine with access, download it once: `huggingface-cli download "
            f"--repo-type dataset {name}{pinned} --local-dir DIR` and pass source='DIR' (or "
            "export the rows: datasets.load_dataset(...).to_json('rows.jsonl') and pass that "
            "file), or fill the Hugging Face cache there (HF_HOME) and copy it here, then set "
            "HF_DATASETS_OFFLINE=1."
        ) from error
    if isinstance(loaded, Mapping):  # a DatasetDict: split=None was asked for
        raise DatasetError(f"{name!r} has splits {sorted(loaded)}: pass data_split=")
    return [dict(row) for row in loaded]


# ----------------------------------------------------------------------------- the environment


class DatasetEnv(TextEnv):
    """Any dataset as an environment: each row poses its prompt; a verifier scores the reply.

    Args:
        source: A list of dicts, a ``.jsonl``/``.json``/``.csv``/``.parquet`` file, a dataset
            folder, or a Hugging Face dataset name (see :func:`load_rows`).
        revision: The hub revision (a commit hash pins the data; recorded in ``provenance``).
        config: The hub dataset's configuration (subset), e.g. ``"main"`` for GSM8K.
        data_split: The dataset's own split to load (``"train"``, ``"test"``...). Not to be
            confused with ``split=``, rlenv's content-hash train/test split of the rows.
        verifier: ``"math"`` (equivalence, :mod:`rlenv.verifiers.math`; the default),
            ``"code"`` (the tests column run in the sandbox), ``"exact"``, ``"regex"`` (the
            answer column is a pattern the whole answer must match), ``"choice"`` (a letter
            A–J; see :mod:`rlenv.verifiers.text`), or a callable
            ``(completion, task) -> Verdict | float | bool``.
        prompt_field: The prompt column (default: the first of prompt, question, problem,
            input). A value that is a list of chat messages is the prompt as it stands.
        answer_field: The reference-answer column (default: answer, target or label).
        tests_field: ``"code"``: the tests column (default: tests, test or test_list): assert
            statements, a list of them, a HumanEval ``check(candidate)`` with an
            ``entry_point`` column, or a list of ``{"input", "output"}`` stdin/stdout cases.
        tools_field: A column of OpenAI-format tool schemas offered with the task
            (``info["tools"]``; the verifier sees them in ``task.metadata["tools"]``).
        choices_field: A column holding the list of options, listed under the prompt as
            ``A. ...``; the ``"choice"`` gold may then also be an option's text or 0-based index.
        solution_field: A column holding a reply known to be right (code: the solution); the
            gold action (default: solution or canonical_solution, for ``"code"``).
        id_field: A column of unique task ids (default: a hash of the row's content).
        metadata_fields: Columns kept in ``task.metadata`` (default: every column).
        prompt_template: A ``str.format`` template over the row's columns plus ``{prompt}``,
            ``{choices}`` (the lettered options) and ``{instruction}``. Default:
            ``"{prompt}\\n\\n{instruction}"`` (with the options before the instruction).
        instruction: The answer-format instruction (default: by verifier, e.g. "Put your final
            answer in \\boxed{}."); ``""`` for none.
        require_boxed: ``"math"``: only a ``\\boxed{}`` answer counts (a format gate).
        case_sensitive: ``"exact"``/``"regex"``: whether case matters (default False).
        timeout: ``"code"``: seconds per test run.
        decay: With ``max_turns > 1``: a right answer on attempt k earns ``decay ** (k - 1)``.
        **kwargs: As for :class:`~rlenv.TextEnv`: ``system_prompt``, ``max_turns`` (above 1, a
            wrong answer hears "That is not correct. Try again." and may retry), ``split``,
            ``test_fraction``...

    ``provenance`` says what was loaded: the file and its SHA-256, or the hub name, revision,
    config and split.
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | Sequence[Mapping[str, Any]],
        *,
        revision: str | None = None,
        config: str | None = None,
        data_split: str = "train",
        verifier: str | Callable[..., Any] = "math",
        prompt_field: str | None = None,
        answer_field: str | None = None,
        tests_field: str | None = None,
        tools_field: str | None = None,
        choices_field: str | None = None,
        solution_field: str | None = None,
        id_field: str | None = None,
        metadata_fields: Sequence[str] | None = None,
        prompt_template: str | None = None,
        instruction: str | None = None,
        require_boxed: bool = False,
        case_sensitive: bool = False,
        timeout: float = 5.0,
        decay: float = 0.5,
        **kwargs: Any,
    ) -> None:
        from rlenv.retry import Retry

        if isinstance(verifier, str) and verifier not in VERIFIERS:
            raise DatasetError(
                f"unknown verifier {verifier!r}: choose one of {', '.join(VERIFIERS)}, or pass a "
                "callable (completion, task) -> Verdict | float | bool"
            )
        if not isinstance(verifier, str) and not callable(verifier):
            raise DatasetError(f"verifier must be a name or a callable, got {verifier!r:.80}")
        self.source = source
        self.verifier_name = verifier if isinstance(verifier, str) else _callable_name(verifier)
        self.fields = {
            "prompt": prompt_field,
            "answer": answer_field,
            "tests": tests_field,
            "tools": tools_field,
            "choices": choices_field,
            "solution": solution_field,
            "id": id_field,
        }
        self.metadata_fields = list(metadata_fields) if metadata_fields is not None else None
        default_instruction = _INSTRUCTIONS.get(verifier, "") if isinstance(verifier, str) else ""
        self.instruction = default_instruction if instruction is None else instruction
        self.prompt_template = prompt_template
        self.require_boxed = require_boxed
        self.case_sensitive = case_sensitive
        self.timeout = timeout
        self.retry = Retry(decay)
        self._load_options = {"revision": revision, "config": config, "data_split": data_split}
        self._verify = _named_verifier(self, verifier) if isinstance(verifier, str) else verifier
        self.provenance: dict[str, Any] = {}
        super().__init__(**kwargs)

    # ------------------------------------------------------------------ hooks

    def load_tasks(self) -> TaskList:
        rows, self.provenance = load_rows(self.source, **self._load_options)
        if not rows:
            raise DatasetError(f"the dataset {_describe(self.source)} has no rows")
        columns = list(rows[0])
        fields = self._resolve_fields(columns)
        self.fields = fields
        tasks: dict[str, Task] = {}
        for index, row in enumerate(rows):
            task = self._task_from_row(row, index, fields)
            if task.id in tasks:
                if fields["id"] is not None:
                    raise DatasetError(f"row {index}: duplicate id {task.id!r} in {fields['id']!r}")
                continue  # the same row twice: one task
            tasks[task.id] = task
        self.provenance["tasks"] = len(tasks)
        return TaskList(tasks.values())

    def start(self, task: Task) -> list[dict[str, Any]]:
        tools = task.metadata.get("tools") if self.fields.get("tools") else None
        self.tools = list(tools) if tools else ()
        return super().start(task)

    def verify(self, task: Task, completion: str) -> Verdict | float | bool:
        return self._verify(completion, task)

    def respond(self, message: AssistantMessage) -> Turn:
        verdict = self.score(message_text(message))
        if self.max_turns == 1:
            return Turn(done=True, verdict=verdict)
        solved = verdict.scored and verdict.components.get("correct", verdict.reward) >= 1.0
        if self.turn >= self.max_turns:
            feedback = _LAST_WRONG
        elif verdict.error:
            feedback = f"That is not correct ({verdict.error}). Try again."
        else:
            feedback = _WRONG
        if len(feedback) > _MAX_FEEDBACK_CHARS:
            feedback = feedback[:_MAX_FEEDBACK_CHARS] + "..."
        return self.retry.turn(verdict, attempt=self.turn, solved=solved, feedback=feedback)

    def gold_action(self) -> str | None:
        task = self.task
        solution = task.metadata.get("solution") if self.fields.get("solution") else None
        if self.verifier_name == "code":
            return f"```python\n{str(solution).rstrip()}\n```" if solution is not None else None
        if solution is not None:
            return str(solution)
        if self.verifier_name == "math":
            from rlenv.verifiers.math import _gold_answer

            answer = _gold_answer(task.answer)
            return None if answer is None else f"The final answer is \\boxed{{{answer}}}."
        if self.verifier_name == "choice":
            from rlenv.verifiers.text import choice_letter

            letter = choice_letter(task.answer, task.metadata.get("choices"))
            return None if letter is None else f"The answer is ({letter})."
        if self.verifier_name == "regex" or task.answer is None:
            return None  # a pattern is not an answer
        text = str(task.answer)
        return text if "\n" not in text and len(text) <= 300 else f"\\boxed{{{text}}}"

    # ------------------------------------------------------------------ rows to tasks

    def _resolve_fields(self, columns: list[str]) -> dict[str, str | None]:
        """Each field's column: the one named, else the first default present."""
        needs_answer = self.verifier_name in ("math", "exact", "regex", "choice")
        defaults: dict[str, tuple[tuple[str, ...], bool]] = {
            "prompt": (_PROMPT_COLUMNS, True),
            "answer": (_ANSWER_COLUMNS, needs_answer),
            "tests": (_TESTS_COLUMNS, True) if self.verifier_name == "code" else ((), False),
            "solution": (_SOLUTION_COLUMNS if self.verifier_name == "code" else (), False),
        }
        resolved: dict[str, str | None] = {}
        for field, column in self.fields.items():
            if column is not None:
                if column not in columns:
                    raise DatasetFieldError(
                        f"{field}_field={column!r} is not a column of {_describe(self.source)}; "
                        f"its columns are {columns}"
                    )
                resolved[field] = column
                continue
            candidates, required = defaults.get(field, ((), False))
            found = next((c for c in candidates if c in columns), None)
            if found is None and required:
                raise DatasetFieldError(
                    f"no {field} column in {_describe(self.source)}: looked for "
                    f"{', '.join(candidates)}; its columns are {columns}. Name it with "
                    f"{field}_field='...'"
                )
            resolved[field] = found
        for column in self.metadata_fields or ():
            if column not in columns:
                raise DatasetFieldError(
                    f"metadata_fields names {column!r}, not a column of {_describe(self.source)}; "
                    f"its columns are {columns}"
                )
        return resolved

    def _task_from_row(
        self, row: dict[str, Any], index: int, fields: dict[str, str | None]
    ) -> Task:
        def value(field: str) -> Any:
            column = fields[field]
            if column is None:
                return None
            if column not in row:
                raise DatasetFieldError(
                    f"row {index} of {_describe(self.source)} has no {field} column "
                    f"{column!r}; its columns are {list(row)}"
                )
            return row[column]

        prompt_value = value("prompt")
        answer = value("answer")
        if fields["answer"] is not None and answer in (None, ""):
            raise DatasetError(f"row {index}: the answer ({fields['answer']!r}) is empty")
        choices = value("choices")
        if choices is not None and not isinstance(choices, list):
            raise DatasetError(
                f"row {index}: choices ({fields['choices']!r}) must be a list, "
                f"got {type(choices).__name__}"
            )
        metadata_columns = self.metadata_fields if self.metadata_fields is not None else list(row)
        metadata = {column: row[column] for column in metadata_columns if column in row}
        for field in ("tests", "tools", "choices", "solution"):
            if fields[field] is not None:
                metadata[field] = value(field)
        if self.verifier_name == "code":
            if metadata.get("tests") in (None, "", []):
                raise DatasetError(f"row {index}: the tests ({fields['tests']!r}) are empty")
            if "entry_point" in row:
                metadata["entry_point"] = row["entry_point"]
        tools = metadata.get("tools")
        if tools is not None and not (
            isinstance(tools, list) and all(isinstance(t, Mapping) for t in tools)
        ):
            raise DatasetError(
                f"row {index}: tools ({fields['tools']!r}) must be a list of schemas"
            )
        task_id = str(value("id")) if fields["id"] is not None else _content_id(row)
        return Task(
            id=task_id,
            prompt=self._prompt(row, prompt_value, choices, index),
            answer=answer,
            metadata=metadata,
        )

    def _prompt(self, row: dict[str, Any], prompt: Any, choices: Any, index: int) -> Any:
        if _is_messages(prompt):
            return prompt
        options = "\n".join(
            f"{letter}. {choice}"
            for letter, choice in zip("ABCDEFGHIJ", choices or [], strict=False)
        )
        template = self.prompt_template
        if template is None:
            parts = ["{prompt}"]
            parts += ["{choices}"] if options else []
            parts += ["{instruction}"] if self.instruction else []
            template = "\n\n".join(parts)
        fields = {**row, "prompt": prompt, "choices": options, "instruction": self.instruction}
        try:
            text = template.format_map(fields)
        except KeyError as error:
            raise DatasetFieldError(
                f"prompt_template uses {{{error.args[0]}}}, not a column of row {index}; "
                f"its columns are {list(row)} (and prompt, choices, instruction)"
            ) from None
        except (IndexError, ValueError, AttributeError) as error:
            raise DatasetError(f"prompt_template cannot be filled: {error}") from None
        if not text.strip():
            raise DatasetError(f"row {index}: the prompt is empty")
        return text


def _is_messages(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(m, Mapping) and "role" in m for m in value)
    )


def _content_id(row: Mapping[str, Any]) -> str:
    """A task id from the row's content: the first 16 hex digits of the SHA-256 of its canonical
    JSON, the same in every process and on every machine (never Python's ``hash()``)."""
    canonical = json.dumps(row, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _describe(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return repr(str(source))
    return f"the {len(source)} rows given" if isinstance(source, Sequence) else repr(source)


def _callable_name(verifier: Any) -> str:
    return getattr(verifier, "__qualname__", None) or type(verifier).__name__


def _named_verifier(env: DatasetEnv, name: str) -> Callable[[str, Task], Any]:
    """The verifier ``name`` with the env's options, each the project's one implementation."""
    from rlenv.verifiers import text
    from rlenv.verifiers.compose import boxed_format, gate, math_answer
    from rlenv.verifiers.math import MathVerifier

    if name == "math":
        correct = math_answer(MathVerifier(fallbacks=not env.require_boxed))
        return gate(boxed_format(), correct) if env.require_boxed else correct
    if name == "exact":
        return text.exact_answer(case_sensitive=env.case_sensitive)
    if name == "regex":
        return text.regex_answer(flags=0 if env.case_sensitive else re.IGNORECASE)
    if name == "choice":
        return text.choice_answer()
    return lambda completion, task: _code_verdict(completion, task, env.timeout)


def _code_verdict(completion: str, task: Task, timeout: float) -> Verdict:
    """The code verifier of ``envs/code``: the reply's code block against the row's tests."""
    from rlenv.verifiers.code import extract_code, run_io, run_tests
    from rlenv.verifiers.code.verdicts import no_code_verdict, verdict_from

    code = extract_code(completion)
    if code is None:
        return no_code_verdict()
    tests = task.metadata["tests"]
    if isinstance(tests, list) and tests and all(isinstance(t, Mapping) for t in tests):
        return verdict_from(run_io(code, tests, timeout=timeout), code)
    if isinstance(tests, list):
        tests = "\n".join(str(test) for test in tests)
    entry_point = task.metadata.get("entry_point")
    return verdict_from(run_tests(code, str(tests), entry_point=entry_point, timeout=timeout), code)


# ----------------------------------------------------------------------------- registering

_ENTRY_POINT = "rlenv.datasets:DatasetEnv"


def register_dataset(
    id: str,
    source: str | os.PathLike[str] | Sequence[Mapping[str, Any]],
    *,
    override: bool = False,
    **options: Any,
) -> str:
    """Register ``source`` as the environment ``id`` (``"namespace/Name-vN"``) in one call;
    ``options`` are :class:`DatasetEnv`'s (``verifier="exact"``, ``answer_field=``...).
    Returns ``id``. A file path is stored absolute, so other processes find the same file.

    >>> register_dataset("my/Arith-v0", "examples/data/arith.jsonl", verifier="math")
    'my/Arith-v0'
    """
    from rlenv.params import check_env_kwargs
    from rlenv.registry import register

    if isinstance(source, (str, os.PathLike)) and Path(source).exists():
        source = str(Path(source).resolve())
    elif isinstance(source, os.PathLike):
        source = str(source)
    kwargs = {"source": source, **options}
    check_env_kwargs(id, DatasetEnv, kwargs)
    register(id, _ENTRY_POINT, kwargs=kwargs, override=override)
    return id


def resolve_dataset_id(env_id: str) -> str:
    """The registered id of a ``dataset:SOURCE`` id, registering it on first use.

    ``SOURCE`` is a file or folder path, or a hub name with an optional ``@REVISION``
    (``dataset:openai/gsm8k@e53f048``). The id is ``dataset/<name>-<hash>-v0``, the hash of
    the absolute path (or the name and revision), so it is the same in every process.
    """
    if not env_id.startswith(DATASET_ID_PREFIX):
        return env_id
    spec = env_id[len(DATASET_ID_PREFIX) :].strip()
    if not spec:
        raise DatasetError("a dataset id needs a source: dataset:path/to/file.jsonl")
    path = Path(spec).expanduser()
    options: dict[str, Any] = {}
    if path.exists():
        source = str(path.resolve())
        stem = path.name.split(".")[0] or "data"
    else:
        source, _, revision = spec.partition("@")
        if revision:
            options["revision"] = revision
        stem = source.rstrip("/").rsplit("/", 1)[-1].split(".")[0] or "data"
    digest = hashlib.sha256(f"{source}@{options.get('revision')}".encode()).hexdigest()[:8]
    name = re.sub(r"[^\w.]", "_", stem)
    if not name[0].isalpha():
        name = f"d{name}"
    registered = f"dataset/{name}-{digest}-v0"
    from rlenv.registry import register

    register(registered, _ENTRY_POINT, kwargs={"source": source, **options})
    return registered


# ------------------------------------------------------------------ benchmarks on the hub, offline

BENCHMARK_SAMPLE_ENV_VAR = "RLENV_BENCHMARK_SAMPLE"
"""The bundled benchmarks' switch (``rlenv.envs.math.benchmarks``, ``rlenv.envs.code.benchmarks``):
1 poses only the bundled sample, 0 only the hub; unset, the hub with a loud fallback."""
_reachable: dict[str, bool] = {}


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub's host takes a TCP connection (asked once per process): ``datasets``
    retries an unreachable hub for about 25 s, this fails in milliseconds without a network."""
    import socket

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = endpoint.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    if host not in _reachable:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            _reachable[host] = True
        except OSError:
            _reachable[host] = False
    return _reachable[host]


def sample_setting(sample: bool | None) -> bool | None:
    """A benchmark's ``sample=`` argument, else :data:`BENCHMARK_SAMPLE_ENV_VAR`: True (the
    sample only), False (the hub only) or None (the hub, falling back to the sample)."""
    if sample is not None:
        return bool(sample)
    value = os.environ.get(BENCHMARK_SAMPLE_ENV_VAR, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    if value:
        raise RLEnvError(
            f"{BENCHMARK_SAMPLE_ENV_VAR}={value!r}: use 1 (the sample only), 0 (the hub only)"
        )
    return None
