"""Environment parameters: ``key=value`` text, and checking kwargs against an env's signature.

Two mistakes used to pass silently: ``-k require_boxed=False`` stayed the *string* ``"False"``
(truthy, so the env ran with ``True``), and a misspelt keyword (``dificulty=2``) surfaced as
Gymnasium's ``TypeError`` about ``TextEnv.__init__``. This module is the one place that reads
``key=value`` pairs (the CLI's ``-k`` and ``--set``, ``TrainConfig.with_overrides``) and the one
place that checks keyword arguments against what an environment accepts (``rlenv.make``).

>>> parse_value("False"), parse_value("3"), parse_value("[1, 2]"), parse_value("abc")
(False, 3, [1, 2], 'abc')
"""

from __future__ import annotations

import ast
import difflib
import enum
import inspect
import json
import os
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rlenv.errors import EnvArgumentError

__all__ = [
    "check_env_kwargs",
    "creator_parameters",
    "parse_assignments",
    "parse_value",
]

_LITERALS = {"True": True, "False": False, "None": None}


def parse_value(text: str) -> Any:
    """``text`` as a value: JSON (``3``, ``false``, ``[1, 2]``, ``"quoted"``), a Python literal
    (``True``, ``False``, ``None``, ``(1, 2)``, ``'quoted'``), or else the text itself."""
    stripped = text.strip()
    if stripped in _LITERALS:
        return _LITERALS[stripped]
    try:
        return json.loads(stripped)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(stripped)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def parse_assignments(pairs: Sequence[str], *, flag: str = "-k") -> dict[str, Any]:
    """Turn ``["digits=3", "require_boxed=False"]`` into ``{"digits": 3, "require_boxed": False}``.

    Each value goes through :func:`parse_value`. A pair without ``=`` or whose key is not a
    Python identifier raises :class:`~rlenv.errors.EnvArgumentError` naming ``flag``.
    """
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise EnvArgumentError(
                f"{flag} expects KEY=VALUE with a Python identifier as KEY, got {pair!r}"
            )
        values[key] = parse_value(text)
    return values


def creator_parameters(creator: Callable[..., Any]) -> dict[str, inspect.Parameter] | None:
    """The keyword parameters ``creator`` (an env class or factory) accepts, or ``None`` when
    it accepts any keyword (a ``**kwargs`` that is not passed on to a known base class).

    For a class, ``__init__`` is read along the MRO for as long as each one forwards
    ``**kwargs`` to its base (the rlenv convention), so ``Arithmetic``'s parameters include
    ``TextEnv``'s ``max_turns`` and ``split``.
    """
    if inspect.isclass(creator):
        functions = [
            klass.__dict__["__init__"] for klass in creator.__mro__ if "__init__" in klass.__dict__
        ]
        functions = [function for function in functions if function is not object.__init__]
    else:
        functions = [creator]
    found: dict[str, inspect.Parameter] = {}
    for function in functions:
        try:
            signature = inspect.signature(function)
        except (TypeError, ValueError):
            return None
        hints = _type_hints(function)
        forwards = False
        for name, parameter in signature.parameters.items():
            if name == "self" or parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
                continue
            if parameter.kind is inspect.Parameter.VAR_KEYWORD:
                forwards = True
            elif parameter.kind is not inspect.Parameter.VAR_POSITIONAL and name not in found:
                found[name] = parameter.replace(annotation=hints.get(name, parameter.annotation))
        if not forwards:
            return found
        if not inspect.isclass(creator):
            return None
    return None


def check_env_kwargs(env_id: str, creator: Callable[..., Any], kwargs: Mapping[str, Any]) -> None:
    """Raise :class:`~rlenv.errors.EnvArgumentError` if ``kwargs`` names a parameter the
    environment does not have (with the close match and the accepted list) or gives a value
    whose type does not match the parameter's annotation (e.g. the string ``"False"`` for a
    ``bool``). Values are checked, never converted."""
    parameters = creator_parameters(creator)
    if parameters is None:
        return
    for name, value in kwargs.items():
        parameter = parameters.get(name)
        if parameter is None:
            close = difflib.get_close_matches(name, list(parameters), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise EnvArgumentError(
                f"{env_id} has no parameter {name!r}.{hint} It accepts: "
                f"{', '.join(sorted(parameters))} (`rlenv info {env_id}` describes them)."
            )
        problem = _type_problem(parameter.annotation, value)
        if problem is not None:
            raise EnvArgumentError(f"{env_id}: parameter {name!r} {problem}")


def _type_hints(function: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function)
    except Exception:  # an annotation that cannot be resolved is simply not checked
        return {}


def _type_problem(annotation: Any, value: Any) -> str | None:
    """Why ``value`` does not fit ``annotation``, or ``None`` when it does (or cannot be told).

    A value passes when pydantic's strict mode accepts it. Lax mode is allowed only for
    conversions that keep the meaning (an int for a float, a list for a tuple, a path string
    for a ``Path``); a string or a bool is never re-read as another type, since that is how
    ``"False"`` became True.
    """
    if annotation is inspect.Parameter.empty or annotation is Any:
        return None
    try:
        from pydantic import TypeAdapter, ValidationError

        adapter = TypeAdapter(annotation)
    except Exception:  # an arbitrary class pydantic cannot describe: not checked
        return None
    try:
        adapter.validate_python(value, strict=True)
        return None
    except ValidationError:
        pass
    except Exception:
        return None
    expected = _type_name(annotation)
    try:
        converted = adapter.validate_python(value)
    except ValidationError:
        return f"expects {expected}, got {type(value).__name__} {value!r:.80}"
    except Exception:
        return None
    if isinstance(value, (str, bool)) and not isinstance(converted, (os.PathLike, enum.Enum)):
        fix = " (write True or False, not a string)" if _admits(annotation, bool) else ""
        return f"expects {expected}, got {type(value).__name__} {value!r:.80}{fix}"
    return None


def _admits(annotation: Any, kind: type) -> bool:
    if annotation is kind:
        return True
    return any(_admits(argument, kind) for argument in typing.get_args(annotation))


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")
