"""``TextEnv``: the Gymnasium environment every rlenv environment is.

An episode is a conversation. ``reset`` poses a task (the opening messages); each ``step`` takes
what the model said and returns the conversation so far, a reward and a verdict. A single-turn
task ends after the first answer; a multi-turn task answers each model turn (feedback, a game
move, tool results) until it is solved or a limit is hit.

Writing an environment means overriding a few hooks:

- :meth:`TextEnv.load_tasks` — where tasks come from (unless the user passes ``tasks=``);
- :meth:`TextEnv.verify` — score a final answer (single-turn envs need nothing else);
- :meth:`TextEnv.respond` — answer a model turn (multi-turn envs); returns a :class:`Turn`;
- :meth:`TextEnv.start` — per-episode setup and the opening messages (optional);
- :meth:`TextEnv.gold_action` — an action known to earn full reward (for ``check_env``).

See ``docs/writing-an-environment.md``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

import gymnasium as gym
from pydantic import ValidationError

from rlenv.chat import (
    AssistantMessage,
    FrozenDict,
    Message,
    copy_json,
    copy_messages,
    freeze_json,
    message_text,
    render_messages,
    validate_assistant_message,
)
from rlenv.errors import (
    EpisodeFinishedError,
    InvalidActionError,
    ResetNeededError,
    TaskFormatError,
)
from rlenv.spaces import ActionSpace, ConversationSpace
from rlenv.tasks import (
    DEFAULT_TEST_FRACTION,
    Task,
    TaskSource,
    as_task_source,
    split_tasks,
)
from rlenv.verdict import Verdict, as_verdict

__all__ = ["Action", "Observation", "TextEnv", "Turn"]

logger = logging.getLogger("rlenv")

Observation = list[Message]
"""The whole conversation so far, as chat message dicts."""

Action = Union[str, AssistantMessage]  # noqa: UP007
"""The model's raw completion text, or an assistant message dict with already-parsed tool calls."""

_RESET_OPTIONS = frozenset({"task_id", "task"})


@dataclass
class Turn:
    """An environment's answer to one model turn, returned by :meth:`TextEnv.respond`.

    - ``messages``: what the environment says back (feedback, tool results), appended to the
      conversation after the model's message. Empty when there is nothing to say.
    - ``reward``: the reward for this turn; ``None`` takes ``verdict.reward`` (or 0).
    - ``done``: the task is over (solved, or failed for good): ``terminated`` becomes True.
    - ``verdict``: why; ``None`` gives a plain ``Verdict(reward=reward)``.
    """

    messages: list[Message] = field(default_factory=list)
    reward: float | None = None
    done: bool = False
    verdict: Verdict | None = None

    @classmethod
    def reply(
        cls, text: str, *, reward: float | None = None, verdict: Verdict | None = None
    ) -> Turn:
        """The environment answers with a user message and the episode goes on."""
        return cls(messages=[{"role": "user", "content": text}], reward=reward, verdict=verdict)

    @classmethod
    def end(cls, result: Verdict | float | bool, *, messages: Sequence[Message] = ()) -> Turn:
        """The episode is over; ``result`` is a verdict, a reward, or pass/fail."""
        return cls(messages=list(messages), done=True, verdict=as_verdict(result))


class TextEnv(gym.Env[Observation, Action]):
    """A Gymnasium environment for language models: chat messages in, text out.

    **Observations** are the whole conversation so far: a fresh list of OpenAI / Hugging Face
    chat message dicts, ready for ``tokenizer.apply_chat_template(obs, tools=info["tools"])``.

    **Actions** are the model's raw completion text (``str``), or an assistant message dict whose
    ``tool_calls`` were parsed elsewhere (e.g. by an OpenAI-compatible server). Any text is a
    valid action: junk gets reward 0 and an explanation, never an exception. Text longer than
    ``max_action_chars`` is cut to that length and truncates the episode with ``min_reward``
    (0 unless the env pays less for a loss), so that flooding never beats playing.

    **reset(seed=None, options=None) -> (observation, info)** poses a task. The same ``seed``
    always poses the same task; ``options={"task_id": id}`` poses a task by id and
    ``options={"task": Task(...)}`` poses a given task. ``info`` holds ``"task_id"``,
    ``"new_messages"`` (the opening messages) and ``"tools"``.

    **step(action) -> (observation, reward, terminated, truncated, info)**:

    - ``reward``: a float for this turn.
    - ``terminated``: the task is over (answered, solved, failed for good).
    - ``truncated``: a limit was hit (``max_turns`` model turns, or an over-long action).
    - ``info["verdict"]``: a :class:`~rlenv.Verdict` saying why; ``info["new_messages"]``: the
      messages this step added (the model's, then the environment's); ``info["tools"]``: the
      OpenAI-format tool schemas available (``[]`` when none); ``info["turn"]``: model turns so
      far; ``info["task_id"]``.

    Once ``terminated`` or ``truncated`` is True, the user must call ``reset()``: stepping a
    finished episode raises :class:`~rlenv.errors.EpisodeFinishedError`, and stepping before
    the first reset raises :class:`~rlenv.errors.ResetNeededError`.

    **Writing an environment.** Subclass and override :meth:`load_tasks` and :meth:`verify`
    (single-turn) or :meth:`respond` (multi-turn). Class attributes set defaults that
    constructor arguments override: ``max_turns`` (1), ``system_prompt`` (None),
    ``max_action_chars`` (200,000), ``max_reward`` (1.0, the total reward of a perfect episode).
    """

    # render_fps only silences Gymnasium's checker: a transcript has no frame rate.
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "human"], "render_fps": 1}

    max_turns: int = 1
    system_prompt: str | None = None
    max_action_chars: int = 200_000
    max_reward: float = 1.0
    min_reward: float = 0.0
    """The lowest reward a turn can pay (a game's loss: -1); an over-long action gets it, so a
    policy cannot escape a loss by flooding the environment."""
    tools: Sequence[Mapping[str, Any]] = ()
    """OpenAI-format tool schemas offered to the model (``ToolEnv`` fills this in)."""

    def __init__(
        self,
        tasks: TaskSource | Sequence[Task | dict[str, Any]] | str | None = None,
        *,
        max_turns: int | None = None,
        system_prompt: str | None = None,
        max_action_chars: int | None = None,
        render_mode: str | None = None,
        split: str | None = None,
        test_fraction: float = DEFAULT_TEST_FRACTION,
    ) -> None:
        """Create the environment.

        Args:
            tasks: Tasks to pose instead of the environment's own: a :class:`TaskSource`, a list
                of :class:`Task` objects or dicts, or the path of a JSONL file.
            max_turns: Model turns before the episode is truncated (class default otherwise).
            system_prompt: A system message put before every task's prompt.
            max_action_chars: Longest accepted action text; longer text truncates the episode.
            render_mode: ``"ansi"`` (``render()`` returns the transcript) or ``"human"``
                (messages are printed as they happen).
            split: ``"train"`` or ``"test"``: pose only the tasks on that side of a split by
                content (a hash of the prompt, :func:`~rlenv.tasks.split_of`), so no problem
                is posed by both, whatever their seeds. ``None`` (default): every task.
            test_fraction: The share of problems in the ``"test"`` split (0.2).
        """
        if max_turns is not None:
            self.max_turns = max_turns
        if system_prompt is not None:
            self.system_prompt = system_prompt
        if max_action_chars is not None:
            self.max_action_chars = max_action_chars
        if not isinstance(self.max_turns, int) or self.max_turns < 1:
            raise ValueError(f"max_turns must be a positive integer, got {self.max_turns!r}")
        if not isinstance(self.max_action_chars, int) or self.max_action_chars < 1:
            raise ValueError(
                f"max_action_chars must be a positive integer, got {self.max_action_chars!r}"
            )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}"
            )
        self.render_mode = render_mode
        self.task_source: TaskSource = (
            as_task_source(tasks) if tasks is not None else self.load_tasks()
        )
        if split is not None:
            self.task_source = split_tasks(self.task_source, split, test_fraction)
        self.split = split
        self.observation_space = ConversationSpace()
        self.action_space = ActionSpace(self.max_action_chars)
        self._messages: list[Message] = []
        self._task: Task | None = None
        self._turn = 0
        self._done: bool | None = None  # None: never reset
        self._rendered = 0

    # ------------------------------------------------------------------ hooks to override

    def load_tasks(self) -> TaskSource:
        """Where this environment's tasks come from, when none are passed as ``tasks=``.

        Return a :class:`~rlenv.GeneratedTasks` for procedural tasks or a
        :class:`~rlenv.TaskList` for a dataset.
        """
        raise NotImplementedError(
            f"{type(self).__name__} has no tasks: override load_tasks() or pass tasks=..."
        )

    def start(self, task: Task) -> list[Message]:
        """Set up a new episode for ``task`` and return its opening messages.

        The default returns the system prompt (if any) followed by ``task.prompt``. Override to
        build per-episode state (a fresh game board, a fresh database) before calling
        ``super().start(task)``.
        """
        opening: list[Message] = list(task.prompt)
        if self.system_prompt is not None and opening[0]["role"] != "system":
            opening.insert(0, {"role": "system", "content": self.system_prompt})
        return opening

    def verify(self, task: Task, completion: str) -> Verdict | float | bool:
        """Score a final answer: ``completion`` is the text of the model's message.

        Return a :class:`~rlenv.Verdict`, a float reward, or a bool (pass = 1.0). Must not raise
        on any text; if it does, the step gets reward 0 with ``verdict.scored = False`` and the
        error is logged (``check_env`` reports it as a bug).
        """
        raise NotImplementedError(
            f"{type(self).__name__} must override verify() (single-turn) or respond() (multi-turn)"
        )

    def respond(self, message: AssistantMessage) -> Turn:
        """Answer one model turn; ``message`` is the model's assistant message.

        The default is single-turn behaviour: score the text with :meth:`verify` and end the
        episode. Multi-turn environments override this and return ``Turn.reply(...)`` to go on
        or ``Turn.end(...)`` to finish; :attr:`task` and :attr:`turn` give the episode state.
        """
        return Turn(done=True, verdict=self.score(message_text(message)))

    def interpret(self, message: AssistantMessage) -> AssistantMessage:
        """How the model's message is recorded in the conversation (called before
        :meth:`respond`). The default keeps it as sent; :class:`~rlenv.tools.ToolEnv` attaches
        the parsed ``tool_calls`` so the transcript is a standard tool-calling conversation.
        Must not raise on any text."""
        return message

    def gold_action(self) -> Action | None:
        """An action that earns full reward from the current state, or ``None`` if unknown.

        ``check_env`` plays it until the episode ends and expects ``max_reward`` in total. The
        default submits ``str(task.answer)`` when the task has an answer; override it when the
        verifier expects a format (e.g. ``\\boxed{}``).
        """
        if self._task is None or self._task.answer is None:
            return None
        return str(self._task.answer)

    # ------------------------------------------------------------------ state

    @property
    def task(self) -> Task:
        """The current episode's task. Raises ``ResetNeededError`` before the first reset."""
        if self._task is None:
            raise ResetNeededError("no task yet: call env.reset() first")
        return self._task

    @property
    def turn(self) -> int:
        """Model turns taken so far in this episode."""
        return self._turn

    @property
    def messages(self) -> list[Message]:
        """The conversation so far (the same as the last observation): a new list of read-only
        message dicts; ``rlenv.chat.copy_messages(env.messages)`` gives editable copies."""
        return list(self._messages)

    @property
    def done(self) -> bool:
        """Whether the current episode has ended (True before the first reset)."""
        return self._done is not False

    def score(self, completion: str) -> Verdict:
        """Run :meth:`verify` on ``completion`` for the current task, never raising.

        A verifier that raises or returns something invalid gives reward 0 with
        ``scored=False``, and the error is logged.
        """
        return self._checked(self.verify, self.task, completion)

    def _checked(self, scorer: Callable[..., Verdict | float | bool], *args: Any) -> Verdict:
        """``scorer(*args)`` as a Verdict; a scorer bug gives an unscored 0, logged."""
        try:
            return as_verdict(scorer(*args))
        except NotImplementedError:
            raise
        except Exception as error:  # a verifier bug must not kill a training run
            name = getattr(scorer, "__name__", "scorer")
            logger.warning("%s.%s raised", type(self).__name__, name, exc_info=True)
            return Verdict(
                reward=0.0,
                scored=False,
                error=f"verifier failed: {type(error).__name__}: {error}",
            )

    # ------------------------------------------------------------------ Gymnasium API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observation, dict[str, Any]]:
        """Start a new episode: pose a task and return its opening messages.

        Args:
            seed: Seeds the environment's random generator (``self.np_random``), which draws the
                task. The same seed poses the same task, in every process. The seed is *not*
                the task id: a generated task's id names the generator seed that ``reset``
                drew (``"seed-5874934615388537134"``), so to replay a task, keep its id.
            options: ``{"task_id": info["task_id"]}`` poses that task again (replay);
                ``{"task": Task(...)}`` (or a dict) poses a given task. No other keys.

        Returns:
            ``(observation, info)``. ``observation`` is the conversation so far (the system
            prompt, if any, and the task's prompt) as a new list of read-only chat message
            dicts; ``info`` holds ``"task_id"`` (pass it back as ``options`` to replay),
            ``"new_messages"`` (the same opening messages) and ``"tools"`` (OpenAI-format tool
            schemas, ``[]`` when none).

        Raises:
            TaskNotFoundError: ``options["task_id"]`` names no task of this environment.
            TaskFormatError: ``options["task"]`` is not a valid task, or :meth:`start`
                returned no messages.
        """
        super().reset(seed=seed)
        task = self._select_task(options)
        opening = self.start(task)
        if not opening:
            raise TaskFormatError(f"{type(self).__name__}.start() returned no messages")
        self._task = task
        self._messages = [freeze_json(message) for message in opening]
        self._turn = 0
        self._done = False
        self._rendered = 0
        if self.render_mode == "human":
            self._print_new()
        info = {
            "task_id": task.id,
            "new_messages": list(self._messages),
            "tools": copy_json(list(self.tools)) if self.tools else [],
        }
        return list(self._messages), info

    def step(self, action: Action) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        """Take the model's turn and return what happened.

        Args:
            action: The model's raw completion text (any ``str``: junk, hostile or empty text
                is scored, never raised on; text over ``max_action_chars`` is cut and
                truncates the episode with reward 0), or an assistant message dict whose
                ``tool_calls`` were parsed elsewhere.

        Returns:
            ``(observation, reward, terminated, truncated, info)``:

            - ``observation``: the whole conversation so far, the model's message and the
              environment's answer included (a new list of read-only message dicts; copy one
              with ``dict(message)`` to edit it).
            - ``reward``: this turn's reward (a float).
            - ``terminated``: the task is over (answered, solved, failed for good).
            - ``truncated``: a limit was hit (``max_turns``, an over-long action) or an
              environment hook failed (then ``info["verdict"].scored`` is False and its
              ``error`` says why, as ``rlenv serve`` answers).
            - ``info``: ``"verdict"`` (a :class:`~rlenv.Verdict`: why this reward),
              ``"new_messages"`` (what this step added), ``"tools"``, ``"turn"`` (model turns
              so far) and ``"task_id"``.

            If ``terminated`` or ``truncated`` is True, the episode is over: call
            :meth:`reset` before stepping again.

        Raises:
            ResetNeededError: ``step`` before the first ``reset``.
            EpisodeFinishedError: ``step`` after the episode ended.
            InvalidActionError: the action is neither text nor an assistant message dict.
        """
        if self._done is None:
            raise ResetNeededError(
                f"{type(self).__name__}.step() was called before reset(); call env.reset() first"
            )
        if self._done:
            raise EpisodeFinishedError(
                f"{type(self).__name__}: the episode has ended (terminated or truncated); "
                "call env.reset() to start a new one"
            )
        message, overlong = self._coerce_action(action)
        turns_before, messages_before = self._turn, len(self._messages)
        try:
            turn: Any = _SCORED
            if overlong:
                message = freeze_json(message)
            elif getattr(self.interpret, "__func__", None) is _DEFAULT_INTERPRET:
                # the default keeps the message as sent: freeze it (a text action's is flat)
                message = FrozenDict(message) if type(action) is str else freeze_json(message)
            else:
                message = freeze_json(self.interpret(message))
            self._messages.append(message)
            self._turn += 1
            if overlong:
                turn = Turn(
                    verdict=Verdict(
                        reward=self.min_reward,
                        error=f"action too long: over {self.max_action_chars} characters; "
                        "it was cut and the episode truncated",
                    )
                )
            elif (
                getattr(self.respond, "__func__", None) is _DEFAULT_RESPOND
                and getattr(self.score, "__func__", None) is _DEFAULT_SCORE
            ):
                # The default respond() and score(), without building the Turn they return:
                # _checked gives a Verdict with a finite reward (as_verdict), which is what
                # _turn_result would check; the episode ends (done=True) with no reply.
                verdict = self._checked(self.verify, self._task, message_text(message))
                reward, answer, terminated, truncated = float(verdict.reward), [], True, False
            else:
                turn = self.respond(message)
            if turn is not _SCORED:
                reward, verdict = self._turn_result(turn)
                answer = [freeze_json(reply) for reply in turn.messages]
                terminated = bool(turn.done)
                truncated = overlong or (not terminated and self._turn >= self.max_turns)
        except NotImplementedError:  # the env is not finished: leave it as it was
            del self._messages[messages_before:]
            self._turn = turns_before
            raise
        except Exception as error:  # an env bug must not kill a run; it ends the episode
            logger.warning("%s.step failed on a model turn", type(self).__name__, exc_info=True)
            if len(self._messages) == messages_before:
                self._messages.append(freeze_json(message))
                self._turn += 1
            detail = (
                str(error)
                if isinstance(error, _HookError)
                else (f"{type(error).__name__}: {error}")
            )
            reward, answer, terminated, truncated = 0.0, [], False, True
            verdict = Verdict(
                reward=0.0,
                scored=False,
                error=f"environment failed: {detail}; the episode was truncated "
                "(call reset()). respond() must return Turn.reply(...) or Turn.end(...) "
                "and never raise on model output",
            )
        self._messages.extend(answer)
        self._done = terminated or truncated
        if self.render_mode == "human":
            self._print_new()
        info = {
            "task_id": self._task.id if self._task else None,
            "turn": self._turn,
            "new_messages": self._messages[messages_before:],
            "tools": copy_json(list(self.tools)) if self.tools else [],
            "verdict": verdict,
        }
        return list(self._messages), reward, terminated, truncated, info

    def _turn_result(self, turn: Any) -> tuple[float, Verdict]:
        """The reward and verdict of what :meth:`respond` returned, checked."""
        if not isinstance(turn, Turn):
            raise _HookError(
                f"{type(self).__name__}.respond() returned {type(turn).__name__} "
                f"{turn!r:.80}, not a Turn"
            )
        verdict = turn.verdict
        reward = turn.reward if turn.reward is not None else (verdict.reward if verdict else 0.0)
        try:
            reward = float(reward)
        except (TypeError, ValueError):
            raise _HookError(
                f"{type(self).__name__}.respond() gave a non-numeric reward: {reward!r:.80}"
            ) from None
        if not math.isfinite(reward):
            raise _HookError(f"{type(self).__name__}.respond() gave a non-finite reward: {reward}")
        return reward, verdict if verdict is not None else Verdict(reward=reward)

    def render(self) -> str | None:
        """``"ansi"``: the transcript as text. ``"human"``: messages are printed as they happen."""
        if self.render_mode == "ansi":
            return render_messages(self._messages)
        return None

    # ------------------------------------------------------------------ internals

    def _select_task(self, options: dict[str, Any] | None) -> Task:
        if not options:
            return self.task_source.sample(self.np_random)
        unknown = set(options) - _RESET_OPTIONS
        if unknown:
            raise ValueError(
                f"unknown reset option(s) {sorted(unknown)}; supported: {sorted(_RESET_OPTIONS)}"
            )
        if "task" in options:
            task = options["task"]
            try:
                return task if isinstance(task, Task) else Task.model_validate(task)
            except ValidationError as error:
                raise TaskFormatError(f"options['task'] is not a valid Task: {error}") from None
        return self.task_source.get(str(options["task_id"]))

    def _coerce_action(self, action: Any) -> tuple[AssistantMessage, bool]:
        """The action as an assistant message, and whether it was over-long (and cut)."""
        if isinstance(action, str):
            text = action if action.isascii() else _utf8_safe(action)
            overlong = len(text) > self.max_action_chars
            if overlong:
                text = text[: self.max_action_chars]
            return {"role": "assistant", "content": text}, overlong
        if isinstance(action, Mapping):
            try:
                message = validate_assistant_message(dict(action))
            except ValidationError as error:
                raise InvalidActionError(
                    f"a dict action must be an assistant message: {error}"
                ) from None
            content = message.get("content")
            overlong = isinstance(content, str) and len(content) > self.max_action_chars
            if isinstance(content, str):
                content = _utf8_safe(content)[: self.max_action_chars]
                message = {**message, "content": content}
            return copy_messages([message])[0], overlong
        raise InvalidActionError(
            f"an action must be the model's text (str) or an assistant message dict, "
            f"not {type(action).__name__}"
        )

    def _print_new(self) -> None:
        print(render_messages(self._messages[self._rendered :]), end="\n\n", flush=True)
        self._rendered = len(self._messages)

    def __repr__(self) -> str:
        spec_id = self.spec.id if self.spec is not None else None
        return f"<{type(self).__name__} {spec_id or ''}>".replace(" >", ">")


_DEFAULT_INTERPRET = TextEnv.interpret
_SCORED = object()  # step() scored the turn itself (the default respond and score)
_DEFAULT_RESPOND = TextEnv.respond
_DEFAULT_SCORE = TextEnv.score


class _HookError(Exception):
    """A hook broke its contract (wrong return type, non-finite reward); the message says how."""


def _utf8_safe(text: str) -> str:
    """``text`` with characters UTF-8 cannot encode (lone surrogates) replaced by ``?``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text
