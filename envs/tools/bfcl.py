"""``rlenv/BFCL-*-v0``: single-turn function calling on the Berkeley Function Calling Leaderboard.

Four of BFCL's Python categories, one environment class with a ``category`` argument:

- ``simple`` (``rlenv/BFCL-Simple-v0``, 400 tasks): one function offered, one call expected;
- ``multiple`` (``rlenv/BFCL-Multiple-v0``, 200): several offered, one call to the right one;
- ``parallel`` (``rlenv/BFCL-Parallel-v0``, 200): one function, several calls, any order;
- ``parallel_multiple`` (``rlenv/BFCL-ParallelMultiple-v0``, 200): several functions and calls.

The questions and possible answers are read from the ``bfcl-eval`` package's JSON files without
importing its Python modules (their dependencies are heavy): ``pip install --no-deps bfcl-eval``.
Calls are graded by :func:`rlenv.verifiers.trace.match_calls` with BFCL's rules. See the
"BFCL environments" section of ``docs/tools.md``.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

from rlenv import Task, TaskList, TextEnv, Turn, Verdict
from rlenv.chat import AssistantMessage
from rlenv.errors import RLEnvError
from rlenv.tools import ParsedCall, ParsedTurn, get_parser, parse_message
from rlenv.tools.parsers import as_assistant_message
from rlenv.verifiers.trace import ExpectedCall, TracePolicy, match_calls

__all__ = [
    "BFCL",
    "CATEGORIES",
    "BFCLProblem",
    "MissingDatasetError",
    "gold_calls",
    "json_schema",
    "load_bfcl",
    "openai_tool",
    "tool_name",
]

BFCL_VERSION = "2026.3.23"
"""The ``bfcl-eval`` release the environments were built and tested against."""

CATEGORIES = {
    "simple": "simple_python",
    "multiple": "multiple",
    "parallel": "parallel",
    "parallel_multiple": "parallel_multiple",
}
"""Our category names → BFCL's file stems (``simple`` is split by language; we take Python)."""

_INSTALL = f"pip install --no-deps 'bfcl-eval=={BFCL_VERSION}'"

# BFCL's own type names, as JSON Schema types; "any" means no constraint (None).
_TYPES = {"dict": "object", "float": "number", "tuple": "array", "any": None}
# Keys of BFCL's function docs that are not JSON Schema ("optional" duplicates "required").
_DROPPED_KEYS = {"optional"}


class MissingDatasetError(RLEnvError, ImportError):
    """The dataset's package is not installed; the message says what to install."""


@dataclass(frozen=True)
class BFCLProblem:
    """One BFCL entry: its id, the chat messages, the function docs and the possible answer."""

    id: str
    messages: list[dict[str, Any]]
    functions: list[dict[str, Any]]
    possible_answer: list[dict[str, dict[str, list[Any]]]]


@lru_cache(maxsize=1)
def _data_dir() -> Path:
    # find_spec locates the package without importing it (bfcl_eval's imports need its deps).
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or spec.origin is None:
        raise MissingDatasetError(
            "the BFCL environments need the questions and answers from the 'bfcl-eval' package; "
            f"install its data without its (very large) dependencies: {_INSTALL}"
        )
    path = Path(spec.origin).parent / "data"
    if not path.is_dir():
        raise MissingDatasetError(f"the bfcl-eval package has no data folder at {path}: {_INSTALL}")
    return path


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise MissingDatasetError(
            f"bfcl-eval has no file {path.name} (expected at {path}); rlenv was tested with "
            f"bfcl-eval {BFCL_VERSION}: {_INSTALL}"
        )
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@lru_cache(maxsize=len(CATEGORIES))
def _load(category: str) -> tuple[BFCLProblem, ...]:
    if category not in CATEGORIES:
        raise ValueError(f"unknown BFCL category {category!r}; choose one of {sorted(CATEGORIES)}")
    stem = f"BFCL_v4_{CATEGORIES[category]}.json"
    questions = _read_jsonl(_data_dir() / stem)
    answers = {
        row["id"]: row["ground_truth"]
        for row in _read_jsonl(_data_dir() / "possible_answer" / stem)
    }
    return tuple(
        BFCLProblem(
            id=row["id"],
            # Single-turn categories hold one turn; the list of turns is flattened.
            messages=[message for turn in row["question"] for message in turn],
            functions=row["function"],
            possible_answer=answers[row["id"]],
        )
        for row in questions
    )


def load_bfcl(category: str) -> list[BFCLProblem]:
    """The problems of one category (``simple``, ``multiple``, ``parallel``,
    ``parallel_multiple``), in BFCL's order. Raises :class:`MissingDatasetError` without
    ``bfcl-eval``."""
    return list(_load(category))


def json_schema(schema: Any) -> Any:
    """A BFCL parameter schema as JSON Schema: ``dict`` → ``object``, ``float`` → ``number``,
    ``tuple`` → ``array``, ``any`` → no type; descriptions, enums, defaults and ``required``
    are kept, BFCL's non-standard ``optional`` flag is dropped."""
    if not isinstance(schema, dict):
        return schema
    converted: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "type":
            mapped = _TYPES.get(value, value) if isinstance(value, str) else value
            if mapped is not None:
                converted["type"] = mapped
        elif key == "properties" and isinstance(value, dict):
            converted["properties"] = {name: json_schema(sub) for name, sub in value.items()}
        elif key == "items":
            converted["items"] = json_schema(value)
        else:
            converted[key] = value
    return converted


def tool_name(name: str) -> str:
    """The name offered to the model: OpenAI allows only ``[a-zA-Z0-9_-]``, so ``.`` → ``_``
    (as BFCL does for such models)."""
    return name.replace(".", "_")


def openai_tool(function: dict[str, Any]) -> dict[str, Any]:
    """One BFCL function doc as an OpenAI-format tool schema."""
    return {
        "type": "function",
        "function": {
            "name": tool_name(function["name"]),
            "description": function.get("description", ""),
            "parameters": json_schema(
                function.get("parameters", {"type": "dict", "properties": {}})
            ),
        },
    }


def _schemas(functions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """BFCL's function names → their JSON-Schema parameters, as offered."""
    return {function["name"]: json_schema(function.get("parameters", {})) for function in functions}


_JSON_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
               (list, "array"), (dict, "object"))  # fmt: skip


def _json_type(value: Any) -> str | None:
    return next((name for kind, name in _JSON_TYPES if isinstance(value, kind)), None)


def _widened(schema: dict[str, Any], values: list[Any]) -> dict[str, Any]:
    """``schema`` whose type also admits the types of ``values`` (BFCL's "variable" rule)."""
    declared = schema.get("type")
    if declared is None:
        return schema
    types = [declared] if isinstance(declared, str) else list(declared)
    kinds = {_json_type(value) for value in values if value != ""} - {None, *types}
    if "number" in types:
        kinds.discard("integer")  # an int is a valid number already
    if not kinds:
        return schema
    return {**schema, "type": [*types, *sorted(kinds)]}


def _checking_schemas(
    functions: list[dict[str, Any]], possible_answer: list[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The schemas the calls are checked against: as offered, except that where BFCL's possible
    answer gives a parameter (or, for arrays, its items) values of another type than the doc,
    that type is accepted too, as BFCL's checker does (it reads them as variable names, e.g.
    ``x="data['sales']"`` for an array of floats)."""
    schemas = _schemas(functions)
    for call in possible_answer:
        for name, arguments in call.items():
            properties = schemas.get(name, {}).get("properties", {})
            for parameter, acceptable in arguments.items():
                schema = properties.get(parameter)
                if schema is None:
                    continue
                schema = _widened(schema, acceptable)
                items = [item for value in acceptable if isinstance(value, list) for item in value]
                if isinstance(schema.get("items"), dict) and items:
                    schema = {**schema, "items": _widened(schema["items"], items)}
                properties[parameter] = schema
    return schemas


_MAX_EXPANSIONS = 256


def _literals(value: Any) -> list[Any]:
    """Every literal form of a possible-answer value (a dict maps keys to acceptable lists,
    ``""`` among them meaning the key may be left out), in the answer's order, at most 256."""
    if isinstance(value, dict):
        forms: list[dict[str, Any]] = [{}]
        for key, acceptable in value.items():
            options: list[dict[str, Any]] = []
            for option in acceptable:
                if option == "":
                    options.append({})
                else:
                    options.extend({key: form} for form in _literals(option))
            forms = [{**form, **option} for form in forms for option in options]
            forms = forms[:_MAX_EXPANSIONS]
        return forms
    if isinstance(value, list):
        items: list[list[Any]] = [[]]
        for item in value:
            items = [[*form, option] for form in items for option in _literals(item)]
            items = items[:_MAX_EXPANSIONS]
        return items
    return [value]


def _answer_for_verifier(acceptable: list[Any]) -> list[Any]:
    """BFCL's acceptable values, with lists of dicts spelled out as literal lists.

    Inside a list BFCL reads each dict as a possible-answer mapping (key → acceptable values);
    the trace verifier compares list items literally, so each such list becomes its literal
    forms. Dicts outside lists stay mappings, which the verifier understands."""
    result: list[Any] = []
    for value in acceptable:
        if isinstance(value, dict):
            result.append(
                {key: _answer_for_verifier(list(options)) for key, options in value.items()}
            )
        elif isinstance(value, list) and _has_dict(value):
            result.extend(_literals(value))
        else:
            result.append(value)
    return result


def _has_dict(value: Any) -> bool:
    if isinstance(value, dict):
        return True
    return isinstance(value, list) and any(_has_dict(item) for item in value)


def _expected(possible_answer: list[dict[str, dict[str, list[Any]]]]) -> list[ExpectedCall]:
    return [
        ExpectedCall(
            name, {key: _answer_for_verifier(list(values)) for key, values in arguments.items()}
        )
        for call in possible_answer
        for name, arguments in call.items()
    ]


def _concrete(value: Any) -> Any:
    """The first literal form of a possible-answer value."""
    return _literals(value)[0]


def _first_valid(acceptable: list[Any], schema: dict[str, Any] | None) -> Any:
    candidates = [_concrete(value) for value in acceptable if value != ""]
    if schema is not None:
        validator = jsonschema.Draft202012Validator(schema)
        for value in candidates:
            if validator.is_valid(value):
                return value
    return candidates[0]


def gold_calls(
    functions: list[dict[str, Any]], possible_answer: list[dict[str, Any]]
) -> list[ParsedCall]:
    """Calls that earn full reward: each parameter takes the first acceptable value that fits its
    schema (the first form of a dict: each key's first acceptable value); a parameter that may
    be omitted (``""`` acceptable) is left out when ``""`` comes first or the schema does not
    list it. Names are the offered ones (``.`` → ``_``)."""
    schemas = _schemas(functions)
    calls = []
    for call in possible_answer:
        for name, arguments in call.items():
            parameters = schemas.get(name, {})
            properties = parameters.get("properties", {})
            required = set(parameters.get("required", []))
            chosen = {}
            for parameter, acceptable in arguments.items():
                if all(value == "" for value in acceptable):
                    continue
                omissible = "" in acceptable and parameter not in required
                if omissible and (acceptable[0] == "" or parameter not in properties):
                    continue
                chosen[parameter] = _first_valid(acceptable, properties.get(parameter))
            calls.append(ParsedCall(tool_name(name), chosen))
    return calls


class BFCL(TextEnv):
    """Answer a request with the right function call(s); BFCL's possible answers decide.

    The functions are offered as ``info["tools"]`` (they change with every task). The model's
    turn is read with ``parser`` (default ``"auto"``), or its ``tool_calls`` when the action is
    an assistant message dict. Reward: 1.0 when the calls match BFCL's possible answer exactly
    (right functions, every call accounted for, unordered), else 0.0 with the reasons.
    """

    def __init__(self, *, category: str = "simple", parser: str = "auto", **kwargs: Any) -> None:
        if category not in CATEGORIES:
            raise ValueError(
                f"unknown BFCL category {category!r}; choose one of {sorted(CATEGORIES)}"
            )
        get_parser(parser)  # an unknown name fails here, not on the first step
        self.category = category
        self.parser = parser
        self.policy = TracePolicy()
        self.tools = []
        self._parsed: ParsedTurn | None = None
        super().__init__(**kwargs)

    def load_tasks(self) -> TaskList:
        return TaskList(
            Task(
                id=problem.id,
                prompt=problem.messages,
                metadata={
                    "category": self.category,
                    "functions": problem.functions,
                    "possible_answer": problem.possible_answer,
                },
            )
            for problem in _load(self.category)
        )

    def start(self, task: Task) -> list[dict[str, Any]]:
        self.tools = [openai_tool(function) for function in task.metadata["functions"]]
        self._parsed = None
        return super().start(task)

    def interpret(self, message: AssistantMessage) -> AssistantMessage:
        """Record the parsed calls as standard ``tool_calls`` (arguments as JSON objects)."""
        parsed = parse_message(message, self.parser, tools=self.tools)
        self._parsed = parsed
        if not parsed.calls:
            return message
        return as_assistant_message(parsed)

    def respond(self, message: AssistantMessage) -> Turn:
        return Turn(done=True, verdict=self._checked(self._grade, self.task))

    def _grade(self, task: Task) -> Verdict:
        parsed = self._parsed or ParsedTurn(content="", calls=[], errors=[])
        if parsed.errors:
            problems = "; ".join(error.message for error in parsed.errors)
            return Verdict(reward=0.0, parsed=_as_json(parsed.calls), error=problems)
        if not parsed.calls:
            return Verdict(reward=0.0, reason="no function call (every BFCL task here needs one)")
        result = match_calls(
            _expected(task.metadata["possible_answer"]),
            parsed.calls,
            schemas=_checking_schemas(task.metadata["functions"], task.metadata["possible_answer"]),
            policy=self.policy,
        )
        reason = "the calls match a possible answer" if result.passed else "; ".join(result.reasons)
        return Verdict(
            reward=1.0 if result.passed else 0.0, reason=reason, parsed=_as_json(parsed.calls)
        )

    def gold_action(self) -> str:
        """The possible answer's calls, written in this env's own format (``parser``)."""
        meta = self.task.metadata
        return get_parser(self.parser).render(
            gold_calls(meta["functions"], meta["possible_answer"])
        )


def _as_json(calls: list[ParsedCall]) -> list[dict[str, Any]]:
    return [{"name": call.name, "arguments": call.arguments} for call in calls]
