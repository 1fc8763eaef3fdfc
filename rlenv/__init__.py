"""rlenv: reinforcement-learning environments for language models.

>>> import rlenv
>>> env = rlenv.make("rlenv/GuessNumber-v0")
>>> observation, info = env.reset(seed=0)
>>> observation[0]["role"]
'user'

Importing rlenv is light and has no side effects beyond registering the bundled environments
in Gymnasium's registry: no torch, no threads, no logging configuration, no network.
"""

from __future__ import annotations

from rlenv.datasets import DatasetEnv, register_dataset
from rlenv.env import Action, Observation, TextEnv, Turn
from rlenv.errors import (
    ConformanceError,
    EpisodeFinishedError,
    InvalidActionError,
    ResetNeededError,
    RLEnvError,
    TaskNotFoundError,
    UnknownEnvError,
)
from rlenv.handles import TaskHandle, TaskTagError
from rlenv.pool import EnvPool, score
from rlenv.registry import list_envs, load_plugins, make, register, spec, unregister
from rlenv.tasks import GeneratedTasks, Task, TaskList, TaskSource
from rlenv.verdict import Verdict

__version__ = "0.1.0"

__all__ = [
    "Action",
    "ConformanceError",
    "DatasetEnv",
    "EnvPool",
    "EpisodeFinishedError",
    "GeneratedTasks",
    "InvalidActionError",
    "Observation",
    "RLEnvError",
    "ResetNeededError",
    "Task",
    "TaskHandle",
    "TaskList",
    "TaskNotFoundError",
    "TaskSource",
    "TaskTagError",
    "TextEnv",
    "Turn",
    "UnknownEnvError",
    "Verdict",
    "__version__",
    "list_envs",
    "load_plugins",
    "make",
    "register",
    "register_dataset",
    "score",
    "spec",
    "unregister",
]

import rlenv.envs  # noqa: F401  (registers the bundled environments; imports no env module)
