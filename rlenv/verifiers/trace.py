"""The tool-trace verifier: did the model make the right calls with the right arguments?

An expected call lists, per parameter, every acceptable value (BFCL's "possible answer" format);
``""`` among them means the parameter may be omitted:

>>> expected = ExpectedCall(
...     "get_weather", {"city": ["Paris", "Paris, France"], "unit": ["", "celsius"]}
... )
>>> check_call(expected, ParsedCall("get_weather", {"city": "paris france"}))
[]
>>> check_call(expected, ParsedCall("get_weather", {"city": "Paris", "unit": "kelvin"}))
["parameter 'unit': 'kelvin' is not one of ['celsius']"]

:func:`check_call` applies BFCL's AST-checker rules to one call, :func:`match_calls` pairs a whole
list of calls (ordered, or unordered by maximum bipartite matching) under a :class:`TracePolicy`,
and :func:`state_diff` lists every difference between two JSON-like world states. Nothing here
raises on model-produced input; see ``docs/tools.md`` ("The tool-trace verifier") for every rule
and where rlenv deliberately differs from BFCL.

A call made (an :data:`ActualCall`) is a parsed call, a ``ToolEnv``'s :class:`ToolOutcome` (so
``match_calls(expected, self.trace)`` grades a tool episode as it stands), or a dict: an OpenAI
``tool_calls`` entry (``{"function": {"name": ..., "arguments": ...}}``, arguments as an object
or a JSON string) or ``{"name": ..., "arguments": ...}``:

>>> outcome = ToolOutcome("get_weather", {"city": "Paris"}, content="18°C", ok=True)
>>> match_calls([expected], [outcome]).passed
True
"""

from __future__ import annotations

import json
import math
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union

from pydantic import BaseModel, Field

from rlenv.tools.core import ToolOutcome
from rlenv.tools.parsers import ParsedCall

__all__ = [
    "ActualCall",
    "CallCheck",
    "ExpectedCall",
    "TracePolicy",
    "TraceResult",
    "check_call",
    "match_calls",
    "state_diff",
]

OPTIONAL = ""
"""In a list of acceptable values: the parameter may be omitted (BFCL's marker)."""

_MAX_DEPTH = 200  # values nested deeper are compared as unequal rather than recursed into
_SHOW_CHARS = 80

ActualCall = Union[ParsedCall, ToolOutcome, Mapping[str, Any]]  # noqa: UP007
"""A call the model made: a :class:`ParsedCall`, a :class:`ToolOutcome` (what ``ToolEnv.trace``
holds: failed calls included, so filter on ``outcome.ok`` to grade only those that ran), or a
dict, either an OpenAI ``tool_calls`` entry or ``{"name": ..., "arguments": ...}``."""


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class ExpectedCall:
    """One call the model should make, with every acceptable value of each parameter.

    ``arguments`` maps a parameter to the list of values accepted for it; ``""`` in the list
    means the parameter may be omitted. A dict among the acceptable values is itself such a
    mapping (key -> acceptable values), as in BFCL; values inside lists are literal. Use
    :meth:`exact` to build one from a single literal call.
    """

    name: str
    arguments: dict[str, list[Any]]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"ExpectedCall.name must be a non-empty str, not {self.name!r}")
        if not isinstance(self.arguments, Mapping):
            raise TypeError(
                f"ExpectedCall.arguments must map each parameter to a list of acceptable values, "
                f"not {type(self.arguments).__name__}"
            )
        arguments: dict[str, list[Any]] = {}
        for key, values in self.arguments.items():
            if not isinstance(key, str):
                raise TypeError(f"ExpectedCall parameter names must be str, not {key!r}")
            if not isinstance(values, (list, tuple)):
                raise TypeError(
                    f"ExpectedCall({self.name!r}) parameter {key!r}: give a list of acceptable "
                    f"values (or use ExpectedCall.exact), not {type(values).__name__}"
                )
            arguments[key] = list(values)
        object.__setattr__(self, "arguments", arguments)

    @classmethod
    def exact(cls, name: str, arguments: Mapping[str, Any]) -> ExpectedCall:
        """The call ``name(**arguments)``: each value is the only acceptable one.

        Dicts are converted to the possible-answer form so they stay literal (every key
        required, its value the only one accepted). A value of ``""`` still means "omitted or
        empty", as in BFCL.
        """
        if not isinstance(arguments, Mapping):
            raise TypeError(f"arguments must be a mapping, not {type(arguments).__name__}")
        return cls(name, {key: [_literal_answer(value)] for key, value in arguments.items()})

    @property
    def required(self) -> list[str]:
        """The parameters that must be present (their acceptable values lack ``""``)."""
        return [key for key, values in self.arguments.items() if OPTIONAL not in values]


def _literal_answer(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: [_literal_answer(item)] for key, item in value.items()}
    return value


class TracePolicy(BaseModel, frozen=True):
    """How strictly :func:`match_calls` and :func:`check_call` compare calls."""

    ordered: bool = Field(
        default=False,
        description="Calls must come in the expected order (else unordered: optimal matching).",
    )
    allow_extra: bool = Field(
        default=False, description="Superset: actual calls that match nothing are not an error."
    )
    allow_missing: bool = Field(
        default=False, description="Subset: expected calls that were not made are not an error."
    )
    partial: bool = Field(
        default=False, description="Score F1 over matched calls instead of all-or-nothing."
    )
    strings: Literal["bfcl", "casefold", "exact"] = Field(
        default="bfcl",
        description="bfcl: lowercase and drop spaces and ,./-_*^ (and ' becomes \"); "
        "casefold: casefold and strip; exact: unchanged.",
    )
    int_for_float: bool = Field(
        default=True, description="Accept an int where the schema says number/float."
    )
    float_tolerance: float = Field(
        default=0.0, ge=0.0, description="Relative tolerance for numbers; 0 means exact."
    )


_DEFAULT_POLICY = TracePolicy()


@dataclass(frozen=True)
class CallCheck:
    """How one expected call, one actual call, or a pair of them fared."""

    expected: int | None
    """Index into the expected calls; ``None`` for an actual call that matched nothing."""
    actual: int | None
    """Index into the actual calls; ``None`` for an expected call that was not made."""
    ok: bool
    """Matched, or unmatched but allowed by ``allow_extra``/``allow_missing``."""
    reasons: list[str]
    """Empty when ``ok``; otherwise every mismatch, e.g. ``"call 2 (get_weather): ..."``."""


@dataclass(frozen=True)
class TraceResult:
    """The outcome of :func:`match_calls`."""

    score: float
    """1.0/0.0, or the F1 over matched calls with ``partial=True``."""
    passed: bool
    """Every expected call matched and no unmatched actual call (modulo ``allow_*``)."""
    checks: list[CallCheck]
    """Expected calls in order (matched or not), then unmatched actual calls."""
    reasons: list[str]
    """Every reason of ``checks``, flattened; empty when ``passed``."""


# ----------------------------------------------------------------------------- display


def _show(value: Any) -> str:
    """A short, never-raising rendering of a model-produced value for messages."""
    text = _render(value, 0)
    return text if len(text) <= _SHOW_CHARS else text[: _SHOW_CHARS - 3] + "..."


def _render(value: Any, depth: int) -> str:
    if isinstance(value, str):
        return repr(value[:_SHOW_CHARS]) + ("..." if len(value) > _SHOW_CHARS else "")
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return (
            repr(value) if value.bit_length() < 200 else f"<integer of {value.bit_length()} bits>"
        )
    if isinstance(value, (list, tuple, Mapping)):
        if depth >= 4:
            return "{...}" if isinstance(value, Mapping) else "[...]"
        if isinstance(value, Mapping):
            items = [
                f"{_render(k, depth + 1)}: {_render(v, depth + 1)}"
                for k, v in list(value.items())[:8]
            ]
            more = ", ..." if len(value) > 8 else ""
            return "{" + ", ".join(items) + more + "}"
        items = [_render(item, depth + 1) for item in list(value)[:8]]
        return "[" + ", ".join(items) + (", ..." if len(value) > 8 else "") + "]"
    return f"<{type(value).__name__}>"


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    if value is None:
        return "null"
    return type(value).__name__


# ----------------------------------------------------------------------------- values

_BFCL_DROP = re.compile(r"[ ,./\-_*^]")


def _normalise(text: str, mode: str) -> str:
    if mode == "bfcl":  # BFCL's standardize_string
        return _BFCL_DROP.sub("", text).lower().replace("'", '"')
    if mode == "casefold":
        return text.casefold().strip()
    return text


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numbers_equal(actual: int | float, expected: int | float, tolerance: float) -> bool:
    if actual == expected:
        return True
    if tolerance <= 0:
        return False
    try:
        return math.isclose(actual, expected, rel_tol=tolerance)
    except OverflowError:  # an int too large for a float
        return False


def _equal(actual: Any, expected: Any, policy: TracePolicy, depth: int = 0) -> bool:
    """Literal comparison with normalisation; ``expected`` drives the recursion."""
    if depth > _MAX_DEPTH:
        return False
    if isinstance(expected, str):
        return isinstance(actual, str) and _normalise(actual, policy.strings) == _normalise(
            expected, policy.strings
        )
    if isinstance(expected, bool):
        return isinstance(actual, bool) and actual == expected
    if _is_number(expected):
        return _is_number(actual) and _numbers_equal(actual, expected, policy.float_tolerance)
    if expected is None:
        return actual is None
    if isinstance(expected, (list, tuple)):
        return (
            isinstance(actual, (list, tuple))
            and len(actual) == len(expected)
            and all(_equal(a, e, policy, depth + 1) for a, e in zip(actual, expected, strict=True))
        )
    if isinstance(expected, Mapping):
        return (
            isinstance(actual, Mapping)
            and len(actual) == len(expected)
            and all(
                key in actual and _equal(actual[key], value, policy, depth + 1)
                for key, value in expected.items()
            )
        )
    return type(actual) is type(expected) and actual == expected


def _acceptable_list(values: Any) -> list[Any]:
    return list(values) if isinstance(values, (list, tuple)) else [values]


def _mismatch(actual: Any, values: Sequence[Any], policy: TracePolicy, depth: int) -> str | None:
    """``None`` if ``actual`` is one of ``values``, else why not (one line)."""
    for value in values:
        if _dict_mismatch(actual, value, policy, depth) is None:
            return None
    shown = [value for value in values if value != OPTIONAL] or list(values)
    if len(shown) == 1 and isinstance(shown[0], Mapping):
        detail = _dict_mismatch(actual, shown[0], policy, depth)
        if detail is not None:
            return detail
    return f"{_show(actual)} is not one of [{', '.join(_show(value) for value in shown)}]"


def _dict_mismatch(actual: Any, answer: Any, policy: TracePolicy, depth: int) -> str | None:
    """Match ``actual`` against one acceptable value; a dict is a possible-answer mapping."""
    if not isinstance(answer, Mapping):
        return None if _equal(actual, answer, policy, depth) else "unequal"
    if depth > _MAX_DEPTH or not isinstance(actual, Mapping):
        return f"{_show(actual)} is not an object"
    for key in actual:
        if key not in answer:
            return f"unexpected key {_show(key)}"
    for key, values in answer.items():
        values = _acceptable_list(values)
        if key not in actual:
            if OPTIONAL not in values:
                return f"missing key {_show(key)}"
            continue
        reason = _mismatch(actual[key], values, policy, depth + 1)
        if reason is not None:
            return f"key {_show(key)}: {reason}"
    return None


# ----------------------------------------------------------------------------- types

_TYPE_ALIASES = {
    "integer": "integer",
    "int": "integer",
    "long": "integer",
    "number": "number",
    "float": "number",
    "double": "number",
    "string": "string",
    "str": "string",
    "boolean": "boolean",
    "bool": "boolean",
    "array": "array",
    "list": "array",
    "tuple": "array",
    "object": "object",
    "dict": "object",
    "null": "null",
    "any": "any",
}


def _has_type(value: Any, type_name: str, policy: TracePolicy) -> bool:
    kind = _TYPE_ALIASES.get(type_name)
    if kind is None or kind == "any":  # a type rlenv does not know is not checked
        return True
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, float) or (
            policy.int_for_float and isinstance(value, int) and not isinstance(value, bool)
        )
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "array":
        return isinstance(value, (list, tuple))
    if kind == "object":
        return isinstance(value, Mapping)
    return value is None


def _type_mismatch(value: Any, schema: Any, policy: TracePolicy) -> str | None:
    """Why ``value`` is not of the schema's ``type`` (or ``None``), without recursing."""
    if not isinstance(schema, Mapping):
        return None
    declared = schema.get("type")
    names = [declared] if isinstance(declared, str) else declared
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        return None
    if any(_has_type(value, name, policy) for name in names):
        return None
    return f"expected {' or '.join(names)}, got {_json_type(value)} {_show(value)}"


def _type_errors(value: Any, schema: Any, policy: TracePolicy) -> str | None:
    """Type check against the schema and, one level down, array items and object values."""
    reason = _type_mismatch(value, schema, policy)
    if reason is not None or not isinstance(schema, Mapping):
        return reason
    if isinstance(value, (list, tuple)) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            reason = _type_mismatch(item, schema["items"], policy)
            if reason is not None:
                return f"item {index}: {reason}"
    if isinstance(value, Mapping):
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            item_schema = properties.get(key) if isinstance(properties, Mapping) else None
            if item_schema is None and isinstance(extra, Mapping):
                item_schema = extra
            reason = _type_mismatch(item, item_schema, policy)
            if reason is not None:
                return f"key {_show(key)}: {reason}"
    return None


# ----------------------------------------------------------------------------- one call


def _same_function(expected: str, actual: Any) -> bool:
    if not isinstance(actual, str):
        return False
    return actual == expected or actual.replace(".", "_") == expected.replace(".", "_")


def _as_call(item: Any) -> ParsedCall:
    """``item`` (an :data:`ActualCall`) as a :class:`ParsedCall`, never raising on a dict.

    A dict's odd name or arguments are kept as they are, for :func:`check_call` to report
    (arguments given as a JSON string are decoded when they hold valid JSON).
    """
    if isinstance(item, ParsedCall):
        return item
    if isinstance(item, ToolOutcome):
        return ParsedCall(item.name, item.arguments)
    if isinstance(item, Mapping):
        function = item.get("function")
        source = function if isinstance(function, Mapping) else item
        arguments = source.get("arguments", {})
        if isinstance(arguments, str):
            arguments = _decoded(arguments)
        call_id = item.get("id")
        return ParsedCall(
            source.get("name"), arguments, call_id if isinstance(call_id, str) else None
        )
    raise TypeError(
        "a call made must be a ParsedCall, a ToolOutcome (from ToolEnv.trace) or a dict, "
        f"not {type(item).__name__}"
    )


def _decoded(arguments: str) -> Any:
    """Arguments sent as a JSON string (OpenAI's form), decoded; the string itself if invalid."""
    if not arguments.strip():
        return {}
    try:
        return json.loads(arguments)
    except (ValueError, RecursionError):
        return arguments


def check_call(
    expected: ExpectedCall,
    actual: ActualCall,
    *,
    schema: Mapping[str, Any] | None = None,
    policy: TracePolicy | None = None,
) -> list[str]:
    """``[]`` if ``actual`` satisfies ``expected``, else every reason it does not.

    ``schema`` is the function's JSON-Schema ``parameters`` object (``properties``,
    ``required``); BFCL's type names (``float``, ``dict``, ``tuple``, ``any``) are understood.
    The rules, in BFCL's order: the function name (``math.factorial`` also matches
    ``math_factorial``); required parameters present; no parameter outside the expected answer
    (or the schema); types; values. A wrong function name is the only reason reported, since
    the arguments of another function mean nothing. ``actual`` may be any :data:`ActualCall`.
    """
    if not isinstance(expected, ExpectedCall):
        raise TypeError(f"expected must be an ExpectedCall, not {type(expected).__name__}")
    actual = _as_call(actual)
    if schema is not None and not isinstance(schema, Mapping):
        raise TypeError(f"schema must be a JSON-Schema mapping, not {type(schema).__name__}")
    policy = policy or _DEFAULT_POLICY

    if not _same_function(expected.name, actual.name):
        return [f"wrong function: {_show(actual.name)} instead of {expected.name!r}"]
    arguments = actual.arguments
    if not isinstance(arguments, Mapping):
        return [f"arguments must be a JSON object, got {_json_type(arguments)}"]

    properties = schema.get("properties") if schema is not None else None
    if not isinstance(properties, Mapping):
        properties = None
    required = list(expected.required)
    schema_required = schema.get("required") if schema is not None else None
    if isinstance(schema_required, list):
        required += [name for name in schema_required if name not in required]

    reasons = [f"missing required parameter {name!r}" for name in required if name not in arguments]
    for name, value in arguments.items():
        if properties is not None and name not in properties:
            reasons.append(f"unknown parameter {_show(name)} (not in the schema)")
            continue
        if name not in expected.arguments:
            reasons.append(f"unexpected parameter {_show(name)}")
            continue
        if properties is not None:
            type_reason = _type_errors(value, properties[name], policy)
            if type_reason is not None:
                reasons.append(f"parameter {name!r}: {type_reason}")
                continue
        value_reason = _mismatch(value, expected.arguments[name], policy, 0)
        if value_reason is not None:
            reasons.append(f"parameter {name!r}: {value_reason}")
    return reasons


# ----------------------------------------------------------------------------- many calls


def _max_matching(compatible: list[list[bool]], m: int) -> list[int | None]:
    """Maximum bipartite matching by BFS augmenting paths; expected index -> actual index."""
    assigned: list[int | None] = [None] * len(compatible)
    owner: list[int | None] = [None] * m
    for start in range(len(compatible)):
        parent: dict[int, int] = {}
        queue, seen, free = deque([start]), {start}, None
        while queue and free is None:
            left = queue.popleft()
            for right in range(m):
                if not compatible[left][right] or right in parent:
                    continue
                parent[right] = left
                holder = owner[right]
                if holder is None:
                    free = right
                    break
                if holder not in seen:
                    seen.add(holder)
                    queue.append(holder)
        right = free
        while right is not None:  # flip the augmenting path
            left = parent[right]
            previous = assigned[left]
            owner[right], assigned[left] = left, right
            right = previous
    return assigned


def _ordered_matching(compatible: list[list[bool]], m: int) -> list[int | None]:
    """The largest order-preserving matching (a longest common subsequence of calls)."""
    n = len(compatible)
    best = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            best[i][j] = max(best[i + 1][j], best[i][j + 1], best[i + 1][j + 1] + compatible[i][j])
    assigned: list[int | None] = [None] * n
    i = j = 0
    while i < n and j < m:
        if compatible[i][j] and best[i][j] == best[i + 1][j + 1] + 1:
            assigned[i] = j
            i, j = i + 1, j + 1
        elif best[i][j + 1] >= best[i + 1][j]:  # on ties keep the earlier expected call
            j += 1
        else:
            i += 1
    return assigned


def match_calls(
    expected: Sequence[ExpectedCall],
    actual: Sequence[ActualCall],
    *,
    schemas: Mapping[str, Mapping[str, Any]] | None = None,
    policy: TracePolicy | None = None,
) -> TraceResult:
    """Pair the actual calls with the expected ones and score the trace.

    Unordered (default): a maximum bipartite matching over the calls that :func:`check_call`
    accepts, so a valid assignment is always found (BFCL's greedy first-fit can miss one).
    Ordered: the largest order-preserving matching; with equal lengths and no ``allow_*`` this
    is position by position. ``schemas`` maps a function name to its ``parameters`` schema.
    ``actual`` holds :data:`ActualCall` items: a ``ToolEnv``'s ``self.trace`` can be passed as is.

    ``passed`` when every expected call is matched and every actual call is (modulo
    ``allow_missing``/``allow_extra``); the score is 1.0 or 0.0, or with ``partial=True`` the
    F1 of precision = matched / actual calls and recall = matched / expected calls (allowed
    extras or misses are left out of the counts; 1.0 when nothing was expected and nothing
    disallowed was called).
    """
    if isinstance(expected, ExpectedCall) or isinstance(actual, (ParsedCall, ToolOutcome, Mapping)):
        raise TypeError("match_calls takes sequences of calls; wrap a single call in a list")
    expected, actual = list(expected), [_as_call(item) for item in actual]
    policy = policy or _DEFAULT_POLICY
    schemas = schemas or {}

    details = [
        [check_call(e, a, schema=_schema_for(e, schemas), policy=policy) for a in actual]
        for e in expected
    ]
    compatible = [[not reasons for reasons in row] for row in details]
    match = _ordered_matching if policy.ordered else _max_matching
    assigned = match(compatible, len(actual))
    owner = {j: i for i, j in enumerate(assigned) if j is not None}

    checks: list[CallCheck] = []
    for i, call in enumerate(expected):
        j = assigned[i]
        if j is not None:
            checks.append(CallCheck(i, j, True, []))
        elif policy.allow_missing:
            checks.append(CallCheck(i, None, True, []))
        else:
            reasons = _explain_missing(i, call, actual, details[i], owner, policy)
            checks.append(CallCheck(i, None, False, reasons))
    for j, call in enumerate(actual):
        if j not in owner:
            name = _show(call.name) if not isinstance(call.name, str) else call.name
            reasons = [] if policy.allow_extra else [f"extra call {j + 1} ({name}): not expected"]
            checks.append(CallCheck(None, j, policy.allow_extra, reasons))

    matched = len(owner)
    errors = sum(not check.ok for check in checks)
    if policy.partial:
        score = 1.0 if errors == 0 else 2 * matched / (2 * matched + errors)
    else:
        score = 1.0 if errors == 0 else 0.0
    reasons = [reason for check in checks for reason in check.reasons]
    return TraceResult(score=score, passed=errors == 0, checks=checks, reasons=reasons)


def _schema_for(
    call: ExpectedCall, schemas: Mapping[str, Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    if call.name in schemas:
        return schemas[call.name]
    return schemas.get(call.name.replace(".", "_"))


def _explain_missing(
    index: int,
    call: ExpectedCall,
    actual: list[ParsedCall],
    details: list[list[str]],
    owner: dict[int, int],
    policy: TracePolicy,
) -> list[str]:
    """Why expected call ``index`` found no partner: the reasons of its closest candidate."""
    prefix = f"call {index + 1} ({call.name})"
    if not actual:
        return [f"{prefix}: missing: no calls were made"]
    candidates = [j for j in range(len(actual)) if _same_function(call.name, actual[j].name)]
    if not candidates:
        return [f"{prefix}: missing: no call to {call.name!r}"]
    closest = min(candidates, key=lambda j: (j in owner, len(details[j]), abs(j - index)))
    if not details[closest]:
        if closest in owner:
            return [
                f"{prefix}: missing: its matching call, actual call {closest + 1}, "
                f"is already matched to call {owner[closest] + 1}"
            ]
        return [f"{prefix}: out of order: it matches actual call {closest + 1}"]
    where = "" if closest == index else f" vs actual call {closest + 1}"
    return [f"{prefix}{where}: {reason}" for reason in details[closest]]


# ----------------------------------------------------------------------------- states

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _child(path: str, key: Any) -> str:
    if isinstance(key, str) and _IDENTIFIER.match(key):
        return f"{path}.{key}"
    return f"{path}[{_show(key)}]"


def state_diff(actual: Any, expected: Any, path: str = "state") -> list[str]:
    """Every difference between two JSON-like states, each with its path; ``[]`` if equal.

    E.g. ``"state.accounts.acc1.balance: 15 != 20"`` (actual first), ``"state.orders: missing
    key 'o7'"``, ``"state.orders: unexpected key 'o8'"``, ``"state.items: length 3 != 2"``.
    Numbers compare with a 1e-9 relative tolerance (NaN equals NaN); ``True`` is not ``1``;
    tuples compare as lists.
    """
    differences: list[str] = []
    _diff(actual, expected, path, differences, 0)
    return differences


def _diff(actual: Any, expected: Any, path: str, out: list[str], depth: int) -> None:
    if depth > _MAX_DEPTH:
        out.append(f"{path}: nested too deep to compare")
        return
    if isinstance(actual, Mapping) and isinstance(expected, Mapping):
        for key in expected:
            if key not in actual:
                out.append(f"{path}: missing key {_show(key)}")
        for key in actual:
            if key not in expected:
                out.append(f"{path}: unexpected key {_show(key)}")
        for key in expected:
            if key in actual:
                _diff(actual[key], expected[key], _child(path, key), out, depth + 1)
        return
    if isinstance(actual, (list, tuple)) and isinstance(expected, (list, tuple)):
        if len(actual) != len(expected):
            out.append(f"{path}: length {len(actual)} != {len(expected)}")
        for index, (a, e) in enumerate(zip(actual, expected, strict=False)):
            _diff(a, e, f"{path}[{index}]", out, depth + 1)
        return
    if not _scalars_equal(actual, expected):
        out.append(f"{path}: {_show(actual)} != {_show(expected)}")


def _scalars_equal(actual: Any, expected: Any) -> bool:
    if _is_number(actual) and _is_number(expected):
        both_floats = isinstance(actual, float) and isinstance(expected, float)
        if both_floats and math.isnan(actual) and math.isnan(expected):
            return True
        return _numbers_equal(actual, expected, 1e-9)
    if _is_number(actual) or _is_number(expected) or isinstance(actual, (Mapping, list, tuple)):
        return False
    if type(actual) is not type(expected):
        return False
    try:
        return bool(actual == expected)
    except Exception:  # an exotic value whose comparison fails is simply different
        return False
