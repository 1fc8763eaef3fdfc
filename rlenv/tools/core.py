"""Tools from typed Python functions: ``@tool`` → an OpenAI-format schema and a safe executor.

>>> @tool
... def add(a: int, b: int = 0) -> int:
...     '''Add two integers.
...
...     Args:
...         a: The first number.
...         b: The second number.
...     '''
...     return a + b
>>> add.schema()["function"]["parameters"]["properties"]["a"]
{'type': 'integer', 'description': 'The first number.'}

The JSON-Schema parameters come from the type hints (through pydantic, so ``Literal``, enums,
``Optional``, lists, dicts and pydantic models all work) and the parameter descriptions from
the docstring (Google or NumPy style). Arguments are validated with ``jsonschema`` before the
function runs. An unknown tool, invalid arguments or an exception inside the tool become a
message the model can read — never a crash.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_type_hints

import jsonschema
from pydantic import BaseModel, Field, create_model

__all__ = ["Tool", "ToolOutcome", "Toolbox", "tool"]

MAX_RESULT_CHARS = 20_000


@dataclass
class Tool:
    """A callable with an OpenAI-format schema. Make one with :func:`tool`."""

    name: str
    description: str
    parameters: dict[str, Any]
    function: Callable[..., Any]
    hidden: tuple[str, ...] = ()
    _validator: Any = field(default=None, repr=False)
    _models: dict[str, type[BaseModel]] = field(default_factory=dict, repr=False)

    def schema(self) -> dict[str, Any]:
        """``{"type": "function", "function": {"name", "description", "parameters"}}``."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": json.loads(json.dumps(self.parameters)),
            },
        }

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def validation_error(self, arguments: Mapping[str, Any]) -> str | None:
        """Why ``arguments`` do not fit the schema (the most relevant problem), or None."""
        if self._validator is None:
            self._validator = jsonschema.Draft202012Validator(self.parameters)
        error = jsonschema.exceptions.best_match(self._validator.iter_errors(dict(arguments)))
        if error is None:
            return None
        where = "/".join(str(part) for part in error.absolute_path)
        return f"argument {where!r}: {error.message}" if where else error.message


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")


def tool(
    function: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    hidden: Iterable[str] = (),
):
    """Turn a typed function into a :class:`Tool` (usable bare or with arguments).

    Args:
        function: The function (sync or ``async``). Every visible parameter needs a type hint.
        name: The tool's name (default: the function's).
        description: The tool's description (default: the docstring's summary).
        hidden: Parameters filled in by the environment (for example the episode's state), kept
            out of the schema and out of the model's reach.
    """

    def build(fn: Callable[..., Any]) -> Tool:
        tool_name = name or fn.__name__
        if not _NAME.match(tool_name):
            raise ValueError(f"tool name {tool_name!r} must match {_NAME.pattern}")
        summary, documented = _parse_docstring(inspect.getdoc(fn) or "")
        hints = get_type_hints(fn, include_extras=True)
        hidden_names = tuple(hidden)
        fields: dict[str, Any] = {}
        models: dict[str, type[BaseModel]] = {}
        for parameter in inspect.signature(fn).parameters.values():
            if parameter.name in hidden_names:
                continue
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                raise TypeError(f"tool {tool_name!r}: *args and **kwargs cannot be described")
            if parameter.name not in hints:
                raise TypeError(
                    f"tool {tool_name!r}: parameter {parameter.name!r} needs a type hint"
                )
            annotation = hints[parameter.name]
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                models[parameter.name] = annotation
            default = ... if parameter.default is inspect.Parameter.empty else parameter.default
            fields[parameter.name] = (
                annotation,
                Field(default, description=documented.get(parameter.name)),
            )
        arguments_model = create_model(f"{tool_name}_arguments", **fields)
        parameters = _clean_schema(arguments_model.model_json_schema())
        return Tool(
            name=tool_name,
            description=description if description is not None else summary,
            parameters=parameters,
            function=fn,
            hidden=hidden_names,
            _models=models,
        )

    return build(function) if function is not None else build


def _clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """pydantic's schema without titles, as an object schema that forbids unknown arguments."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "title"}
        if isinstance(node, list):
            return [strip(item) for item in node]
        return node

    cleaned = strip(schema)
    cleaned.setdefault("properties", {})
    cleaned["type"] = "object"
    cleaned["additionalProperties"] = False
    return cleaned


_GOOGLE_SECTION = re.compile(r"^(Args|Arguments|Parameters|Params):\s*$")
_GOOGLE_PARAM = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_PARAM = re.compile(r"^(\w+)\s*(?::.*)?$")


def _is_rule(line: str) -> bool:
    return bool(line.strip()) and set(line.strip()) == {"-"}


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """(summary, {parameter: description}) from a Google- or NumPy-style docstring
    (as :func:`inspect.getdoc` returns it: dedented)."""
    lines = doc.splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip():
            break
        summary.append(line.strip())
    params: dict[str, str] = {}
    index = 0
    while index < len(lines):
        header = lines[index].strip()
        if _GOOGLE_SECTION.match(header):
            index = _google_section(lines, index + 1, params)
        elif index + 1 < len(lines) and _is_rule(lines[index + 1]) and header in (
            "Parameters", "Arguments", "Args",
        ):  # fmt: skip
            index = _numpy_section(lines, index + 2, params)
        else:
            index += 1
    return " ".join(summary), {key: value for key, value in params.items() if value}


def _google_section(lines: list[str], index: int, params: dict[str, str]) -> int:
    base, current = None, None
    while index < len(lines):
        line = lines[index]
        if line.strip() and not line[0].isspace():
            break  # a dedented line: the next section
        if line.strip():
            indent = len(line) - len(line.lstrip())
            base = indent if base is None else base
            match = _GOOGLE_PARAM.match(line.strip())
            if indent == base and match:
                current = match.group(1)
                params[current] = match.group(2).strip()
            elif current is not None:
                params[current] = f"{params[current]} {line.strip()}".strip()
        index += 1
    return index


def _numpy_section(lines: list[str], index: int, params: dict[str, str]) -> int:
    current = None
    while index < len(lines):
        line = lines[index]
        if line.strip() and not line[0].isspace():
            if index + 1 < len(lines) and _is_rule(lines[index + 1]):
                break  # the next section's header
            match = _NUMPY_PARAM.match(line.strip())
            current = match.group(1) if match else None
            if current is not None:
                params[current] = ""
        elif line.strip() and current is not None:
            params[current] = f"{params[current]} {line.strip()}".strip()
        index += 1
    return index


@dataclass(frozen=True)
class ToolOutcome:
    """What happened when a call ran: the text for the model, and the raw value or error."""

    name: str
    arguments: dict[str, Any]
    content: str
    ok: bool
    value: Any = None
    error: str | None = None


class Toolbox:
    """A set of tools, looked up by name and run safely."""

    def __init__(self, tools: Iterable[Tool | Callable[..., Any]] = ()) -> None:
        self.tools: dict[str, Tool] = {}
        for item in tools:
            built = item if isinstance(item, Tool) else tool(item)
            if built.name in self.tools:
                raise ValueError(f"two tools are named {built.name!r}")
            self.tools[built.name] = built

    def schemas(self) -> list[dict[str, Any]]:
        return [item.schema() for item in self.tools.values()]

    def run(
        self, name: str, arguments: Mapping[str, Any], hidden: Mapping[str, Any] | None = None
    ) -> ToolOutcome:
        """Validate and run one call. Never raises: problems come back as the outcome's text."""
        arguments = dict(arguments)
        chosen = self.tools.get(name)
        if chosen is None:
            known = ", ".join(sorted(self.tools)) or "none"
            error = f"unknown tool {name!r}; the available tools are: {known}"
            return ToolOutcome(name, arguments, f"Error: {error}", ok=False, error=error)
        problem = chosen.validation_error(arguments)
        if problem is not None:
            error = f"invalid arguments for {name!r}: {problem}"
            return ToolOutcome(name, arguments, f"Error: {error}", ok=False, error=error)
        call_arguments = {
            key: chosen._models[key].model_validate(value) if key in chosen._models else value
            for key, value in arguments.items()
        }
        for key in chosen.hidden:
            if hidden is None or key not in hidden:
                raise RuntimeError(f"tool {name!r} needs the hidden argument {key!r}")  # env bug
            call_arguments[key] = hidden[key]
        try:
            value = chosen.function(**call_arguments)
            if inspect.isawaitable(value):
                value = _await(value)
        except Exception as failure:
            error = f"{name!r} raised {type(failure).__name__}: {failure}"[:2000]
            return ToolOutcome(name, arguments, f"Error: {error}", ok=False, error=error)
        return ToolOutcome(name, arguments, _render(value), ok=True, value=value)


def _await(awaitable: Any) -> Any:
    """Run a coroutine to completion, also from inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_wrap(awaitable))
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _wrap(awaitable)).result()


async def _wrap(awaitable: Any) -> Any:
    return await awaitable


def _render(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, BaseModel):
        text = value.model_dump_json()
    else:
        try:
            text = json.dumps(value, default=str)
        except (TypeError, ValueError):
            text = repr(value)
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f"... [{len(text) - MAX_RESULT_CHARS} more characters]"
    return text
