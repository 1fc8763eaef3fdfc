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
``rlenv.spec`` needs them, never on ``import rlenv``. After :func:`load_plugins` (or any of
those calls), ``gymnasium.make`` finds plugin environments as well.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import re
import types
import warnings
from collections.abc import Callable
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec

from rlenv.errors import RegistrationError, UnknownEnvError

__all__ = [
    "ENTRY_POINT_GROUP",
    "list_envs",
    "load_plugins",
    "make",
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
plugin_errors: dict[str, str] = {}
"""Entry points that failed to load, by name, with the error (they are also warned about)."""


def register(
    id: str,
    entry_point: str | Callable[..., Any],
    *,
    kwargs: dict[str, Any] | None = None,
    nondeterministic: bool = False,
) -> None:
    """Register a text environment under ``id`` (``"namespace/Name-vN"``).

    Args:
        id: Namespaced, versioned id, e.g. ``"my_envs/Reverse-v0"``.
        entry_point: ``"module.path:ClassName"`` (imported only when the env is made), or the
            class or factory itself.
        kwargs: Default constructor arguments; ``make(id, **overrides)`` overrides them.
        nondeterministic: Declare that the same seed may not give the same episode (rlenv's
            determinism checks then skip it). Bundled environments are all deterministic.

    Registering the same id again with the same entry point is a no-op; with a different entry
    point it raises :class:`~rlenv.errors.RegistrationError` (bump the version instead).
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
        raise RegistrationError(
            f"{id!r} is already registered with entry point {existing.entry_point!r}; "
            "register a new version (e.g. -v1) instead of replacing it"
        )
    gym.register(
        id=id,
        entry_point=entry_point,
        kwargs=dict(kwargs or {}),
        nondeterministic=nondeterministic,
    )
    _text_env_ids.add(id)


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
    """The Gymnasium ``EnvSpec`` of a registered text environment."""
    load_plugins()
    if id not in _text_env_ids or id not in gym.registry:
        known = list_envs()
        close = difflib.get_close_matches(id, known, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownEnvError(
            f"no text environment is registered as {id!r}.{hint} "
            f"Run `rlenv list` to see the {len(known)} registered ids."
        )
    return gym.registry[id]


def make(id: str, **kwargs: Any):
    """Make the text environment registered as ``id``; ``kwargs`` override its defaults.

    Returns the :class:`~rlenv.TextEnv` itself. ``gymnasium.make(id, **kwargs)`` makes the same
    environment wrapped in Gymnasium's usual checker and order-enforcing wrappers.
    """
    from rlenv.env import TextEnv

    env_spec = spec(id)
    env = gym.make(env_spec, disable_env_checker=True, **kwargs).unwrapped
    if not isinstance(env, TextEnv):
        raise RegistrationError(f"{id!r} made a {type(env).__name__}, which is not a rlenv.TextEnv")
    return env
