"""Exceptions raised by rlenv.

Every error rlenv raises on purpose is an :class:`RLEnvError`, and most also subclass the
built-in or Gymnasium exception a caller would already catch (``ValueError``, ``KeyError``,
``gymnasium.error.ResetNeeded``...), so existing ``except`` clauses keep working.

Model output never raises: malformed or hostile text becomes an observation or a zero reward
with the reason in ``info["verdict"]``. These exceptions are for the *caller's* mistakes.
"""

from __future__ import annotations

import gymnasium.error


class RLEnvError(Exception):
    """Base class of every exception rlenv raises on purpose."""


class ServiceError(RLEnvError):
    """A served environment's server was lost (it restarted, the session expired), stayed busy
    past the client's retries, or could not be reached: a failure of the service, not of the
    caller or the model. The rollout engine records an episode that fails so as unscored
    (never reward 0) and goes on with the rest of the batch (``rlenv.rollout.rollout``)."""


class ResetNeededError(RLEnvError, gymnasium.error.ResetNeeded):
    """``step()`` was called before the first ``reset()``. Call ``env.reset()`` first."""


class EpisodeFinishedError(ResetNeededError):
    """``step()`` was called after the episode ended (``terminated`` or ``truncated`` was True).

    Call ``env.reset()`` to start a new episode. Gymnasium's vector envs and the rollout
    engine do this for you.
    """


class InvalidActionError(RLEnvError, TypeError):
    """The action is neither a string nor a valid assistant message dict.

    This is a programming error in the caller (for example passing token ids or a message with
    the wrong role). Text, however broken, is always accepted.
    """


class TaskNotFoundError(RLEnvError, KeyError):
    """``options={"task_id": ...}`` named a task the environment's task source does not have."""

    def __str__(self) -> str:  # KeyError's str() adds quotes around the message
        return str(self.args[0]) if self.args else ""


class TaskFormatError(RLEnvError, ValueError):
    """A task (or a line of a JSONL task file) is malformed; the message names the field."""


class RegistrationError(RLEnvError, ValueError):
    """An environment id or entry point given to ``rlenv.register`` is invalid."""


class EnvArgumentError(RLEnvError, TypeError):
    """A keyword argument an environment does not accept: a misspelt name (the message names
    the close match and the accepted parameters) or a value of the wrong type (e.g. the string
    ``"False"`` for a ``bool``). Also a malformed ``-k KEY=VALUE`` on the command line."""


class UnknownEnvError(RLEnvError, gymnasium.error.NameNotFound):
    """No environment is registered under that id. ``rlenv list`` shows what is."""


class ConformanceError(RLEnvError, AssertionError):
    """``rlenv.testing.check_env`` found the environment breaks the TextEnv contract."""

    def __init__(self, report: object) -> None:
        super().__init__(str(report))
        self.report = report
