"""Registering and making environments, on top of Gymnasium's registry.

There is one registry: Gymnasium's. ``rlenv.register`` validates the id and records it in
Gymnasium's registry (so ``gymnasium.make`` works too); rlenv only remembers *which* ids are
text environments, for ``rlenv.list_envs()``.

Third-party packages make their environments discoverable through the entry-point group
``rlenv.envs``. Each entry point names either a module (importing it registers the envs) or a
zero-argument function that registers them::

    [project.entry-points."rlenv.envs"]
    my_envs = "my_envs:register"

Plugins are loaded lazily, the first time ``rlenv.make``, ``rlenv.list_envs`` or
``rlenv.spec`` needs them, never on ``import rlenv``. ``gymnasium.make`` reaches a plugin's
environments in Gymnasium's own way, ``gymnasium.make("my_envs:my_envs/Reverse-v0")``: Gymnasium
imports the module before ``:``, and a plugin module registers its environments when imported
(``rlenv new`` scaffolds it so; registering twice is a no-op). After :func:`load_plugins` (or
any rlenv call above) the plain id works in ``gymnasium.make`` as well.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import importlib.util
import inspect
import os
import re
import types
import warnings
from collections.abc import Callable
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec, load_env_creator

from rlenv.errors import RegistrationError, UnknownEnvError
from rlenv.params import check_env_kwargs, creator_parameters

__all__ = [
    "ENTRY_POINT_GROUP",
    "env_creator",
    "env_parameters",
    "list_envs",
    "load_plugins",
    "make",
    "missing_namespace",
    "register",
    "spec",
    "unregister",
]

ENTRY_POINT_GROUP = "rlenv.envs"

# Names may contain hyphens ("BFCL-Simple-v0"), as in Gymnasium's own ids.
_ID_PATTERN = re.compile(
    r"^(?P<namespace>[A-Za-z_][\w.-]*)/(?P<name>[A-Za-z_][\w.-]*?)-v(?P<version>\d+)$"
)

_text_env_ids: set[str] = set()
_plugins_loaded = False
_missing_namespaces: dict[str, str] = {}
plugin_errors: dict[str, str] = {}
"""Entry points that failed to load, by name, with the error (they are also warned about)."""
_plugin_modules: dict[str, str] = {}  # failed entry point name -> the top-level module it names


def register(
    id: str,
    entry_point: str | Callable[..., Any],
    *,
    kwargs: dict[str, Any] | None = None,
    nondeterministic: bool = False,
    override: bool = False,
) -> None:
    """Register a text environment under ``id`` (``"namespace/Name-vN"``).

    Args:
        id: Namespaced, versioned id, e.g. ``"my_envs/Reverse-v0"``.
        entry_point: ``"module.path:ClassName"`` (imported only when the env is made), or the
            class or factory itself.
        kwargs: Default constructor arguments; ``make(id, **overrides)`` overrides them.
        nondeterministic: Declare that the same seed may not give the same episode (rlenv's
            determinism checks then skip it). Bundled environments are all deterministic.
        override: Replace an existing registration of ``id`` on purpose (while iterating on an
            environment). Not allowed for the bundled ``rlenv/`` namespace.

    Registering the same id again with the same entry point is a no-op. With a different entry
    point it raises :class:`~rlenv.errors.RegistrationError` (bump the version instead), except
    with ``override=True``, or when a class of the same name defined in ``__main__`` (a
    notebook cell or script run again) replaces the one registered from ``__main__`` before:
    that registration is replaced, since the old class can no longer be edited anyway.
    """
    if not isinstance(id, str) or not _ID_PATTERN.match(id):
        raise RegistrationError(
            f"invalid environment id {id!r}: use 'namespace/Name-vN', e.g. 'my_envs/Reverse-v0'"
        )
    if isinstance(entry_point, str):
        if ":" not in entry_point:
            raise RegistrationError(
                f"entry point {entry_point!r} must look like 'package.module:ClassName'"
            )
    elif not callable(entry_point):
        raise RegistrationError(f"entry point for {id!r} must be a string or a callable")
    existing = gym.registry.get(id)
    if existing is not None:
        if existing.entry_point == entry_point and (existing.kwargs or {}) == (kwargs or {}):
            _text_env_ids.add(id)
            return
        if (override or _redefined_in_main(existing.entry_point, entry_point)) and not (
            id.startswith("rlenv/")
        ):
            del gym.registry[id]
        else:
            raise RegistrationError(
                f"{id!r} is already registered with entry point "
                f"{entry_point_name(existing.entry_point)!r}; register a new version (e.g. "
                "-v1), or pass override=True to replace it while you iterate"
            )
    gym.register(
        id=id,
        entry_point=entry_point,
        kwargs=dict(kwargs or {}),
        nondeterministic=nondeterministic,
    )
    _text_env_ids.add(id)


def _redefined_in_main(old: Any, new: Any) -> bool:
    """Both entry points are classes or functions of the same name defined in ``__main__``."""
    return (
        callable(old)
        and callable(new)
        and getattr(old, "__module__", None) == "__main__" == getattr(new, "__module__", None)
        and getattr(old, "__qualname__", None) == getattr(new, "__qualname__", object())
    )


def entry_point_name(entry_point: Any) -> str:
    """``"module:qualname"`` of an entry point given as a string or as the class itself."""
    if isinstance(entry_point, str):
        return entry_point
    module = getattr(entry_point, "__module__", "?")
    return f"{module}:{getattr(entry_point, '__qualname__', repr(entry_point))}"


def unregister(id: str) -> None:
    """Remove a text environment from the registry (a no-op if it is not registered).

    Meant for tests that register a temporary environment; published ids should stay.
    """
    if id in _text_env_ids:
        _text_env_ids.discard(id)
        gym.registry.pop(id, None)


def load_plugins() -> dict[str, str]:
    """Load the ``rlenv.envs`` entry points of installed packages (once); return failures.

    A plugin that fails to load is skipped with a warning, so one broken package cannot break
    every other environment.
    """
    global _plugins_loaded
    if _plugins_loaded:
        return dict(plugin_errors)
    _plugins_loaded = True
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry_point.load()
            if callable(loaded) and not isinstance(loaded, types.ModuleType):
                loaded()
        except Exception as error:
            plugin_errors[entry_point.name] = f"{type(error).__name__}: {error}"
            _plugin_modules[entry_point.name] = entry_point.value.split(":")[0].split(".")[0]
            warnings.warn(
                f"rlenv: the environment plugin {entry_point.name!r} ({entry_point.value}) "
                f"failed to load and was skipped: {type(error).__name__}: {error}",
                RuntimeWarning,
                stacklevel=2,
            )
    return dict(plugin_errors)


def list_envs(namespace: str | None = None) -> list[str]:
    """The ids of all registered text environments (bundled and plugins), sorted.

    ``namespace`` keeps only ids in that namespace (e.g. ``"rlenv"``).
    """
    load_plugins()
    ids = (env_id for env_id in _text_env_ids if env_id in gym.registry)
    if namespace is not None:
        ids = (env_id for env_id in ids if env_id.split("/", 1)[0] == namespace)
    return sorted(ids)


def spec(id: str) -> EnvSpec:
    """The Gymnasium ``EnvSpec`` of a registered text environment.

    ``dataset:SOURCE`` (a file, folder or hub name) names a dataset as an environment: it is
    registered on first use (:func:`rlenv.datasets.resolve_dataset_id`)."""
    load_plugins()
    if id.startswith("dataset:"):
        from rlenv.datasets import resolve_dataset_id

        id = resolve_dataset_id(id)
    if id not in _text_env_ids or id not in gym.registry:
        known = list_envs()
        close = difflib.get_close_matches(id, known, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownEnvError(
            f"no text environment is registered as {id!r}.{hint}{_plugin_failure(id)}"
            f"{_missing_namespace_hint(id)} "
            f"Run `rlenv list` to see the {len(known)} registered ids."
        )
    return gym.registry[id]


def missing_namespace(namespace: str, reason: str) -> None:
    """Say why ``namespace`` registers nothing here (a bridge whose package is not installed:
    ``reason`` names what to install); an unknown id in it then says so, instead of only
    "no text environment is registered"."""
    _missing_namespaces[namespace] = reason


def _missing_namespace_hint(id: str) -> str:
    reason = _missing_namespaces.get(id.split("/", 1)[0])
    return f" Its namespace registers nothing here: {reason}." if reason else ""


def _plugin_failure(id: str) -> str:
    """What went wrong with a failed plugin that may have provided ``id`` (or ``""``)."""
    namespace = id.split("/", 1)[0]
    for name, error in plugin_errors.items():
        module = _plugin_modules.get(name, name)
        if namespace.replace("-", "_") not in (name.replace("-", "_"), module):
            continue
        shadow = _shadowing_folder(module)
        cause = (
            f" The folder {shadow} shadows the installed package {module!r} (Python imports "
            f"it as an empty namespace package): run from another folder, or give the project "
            f"a src/ layout (rlenv new does)."
            if shadow
            else ""
        )
        return f" The plugin {name!r}, which may provide it, failed to load: {error}.{cause}"
    return ""


def _shadowing_folder(module: str) -> str | None:
    """A folder that makes ``module`` import as a namespace package (no ``__init__.py``)."""
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if found is None or found.origin not in (None, "namespace"):
        return None
    locations = list(found.submodule_search_locations or [])
    return os.path.relpath(locations[0]) + os.sep if locations else None


def make(id: str, **kwargs: Any):
    """Make the text environment registered as ``id``; ``kwargs`` override its defaults.

    Returns the :class:`~rlenv.TextEnv` itself. ``gymnasium.make(id, **kwargs)`` makes the same
    environment wrapped in Gymnasium's usual checker and order-enforcing wrappers.

    Raises:
        UnknownEnvError: no environment is registered as ``id`` (with the close matches).
        EnvArgumentError: a keyword the environment does not accept (with the close match and
            the accepted list), or a value of the wrong type for the parameter's annotation
            (e.g. the string ``"False"`` for a ``bool``).
    """
    from rlenv.env import TextEnv

    env_spec = spec(id)
    if kwargs:
        check_env_kwargs(id, env_creator(env_spec), kwargs)
    env = gym.make(env_spec, disable_env_checker=True, **kwargs).unwrapped
    if not isinstance(env, TextEnv):
        raise RegistrationError(f"{id!r} made a {type(env).__name__}, which is not a rlenv.TextEnv")
    return env


def env_creator(env_spec: EnvSpec) -> Callable[..., Any]:
    """The class (or factory) a spec makes, imported but not instantiated."""
    entry_point = env_spec.entry_point
    return load_env_creator(entry_point) if isinstance(entry_point, str) else entry_point


def env_parameters(id: str) -> dict[str, inspect.Parameter] | None:
    """The keyword parameters the environment registered as ``id`` accepts (``None``: any)."""
    return creator_parameters(env_creator(spec(id)))
