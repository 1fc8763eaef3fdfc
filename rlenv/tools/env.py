"""``ToolEnv``: the multi-turn tool loop.

Each model turn is parsed for tool calls (in the env's format, see :mod:`rlenv.tools.parsers`);
the calls run in order (at most ``max_calls_per_turn``), their results come back as ``tool``
messages, and the model goes on — until it answers without a call, calls the ``finish_tool``,
or runs out of ``max_turns`` (truncated). The conversation is a standard tool-calling
transcript: the model's message carries the parsed ``tool_calls`` (arguments as objects, the
form Hugging Face chat templates expect), so ``tokenizer.apply_chat_template(observation,
tools=info["tools"])`` renders it directly.

**Parse errors.** A call the parser cannot read (broken JSON, a call cut off inside its
arguments...) is shown to the model as a user message, so it may retry, and is recorded: the
step's ``info["call_errors"]`` lists this turn's errors, ``info["parse_errors"]`` counts them
over the episode so far, and the turn's verdict carries ``parse_errors`` (this turn's count).
A turn whose only calls are malformed has the verdict error ``"parse error: ..."``, so an
episode that ends on it (``max_turns``, or ``end_on_parse_error``) has the stop reason
``"parse error"`` in ``rlenv eval``'s failures by reason. Trainers' ``parse_error`` setting
(``"keep"``, ``"mask"``, ``"zero"``) decides what episodes with parse errors do to the loss.

A well-formed call to a tool the env does not offer is the model's mistake, not a parse error:
it is shown to the model the same way (``"unknown tool 'x' (did you mean 'y'?)"``), listed in
``call_errors``, never run, and not counted in ``parse_errors``, so ``parse_error="mask"`` never
hides a hallucinated tool from the loss.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from rlenv.chat import AssistantMessage, Message, message_text
from rlenv.env import Action, Observation, TextEnv, Turn
from rlenv.tasks import Task
from rlenv.tools.core import Tool, Toolbox, ToolOutcome
from rlenv.tools.parsers import ParsedTurn, as_assistant_message, get_parser, parse_message
from rlenv.verdict import Verdict

__all__ = ["PARSE_ERROR", "ToolEnv"]

PARSE_ERROR = "parse error"
"""The stop reason of a turn whose only tool calls were malformed: its verdict's ``error``
starts ``"parse error: "`` (:func:`rlenv.evaluation.outcome_reason` groups by that prefix)."""


class ToolEnv(TextEnv):
    """A :class:`~rlenv.TextEnv` whose model can call tools.

    Override :meth:`load_tools` (the tools: ``@rlenv.tools.tool`` functions), optionally
    :meth:`new_state` (a fresh world per episode, passed to tools' hidden ``state`` argument),
    and :meth:`grade` (the final reward, from the answer, :attr:`trace` and :attr:`state`).

    Class attributes (constructor arguments override them): ``parser`` (``"hermes"``), the
    tool-call format; ``max_calls_per_turn`` (8); ``finish_tool`` (None), a tool whose successful
    call ends the episode; ``max_turns`` (8); ``end_on_parse_error`` (False): True ends the
    episode (terminated, reward 0, stop reason ``"parse error"``) on a turn whose only calls
    were malformed, instead of showing the errors and letting the model retry.

    Malformed calls never raise. A call the parser cannot read comes back to the model as a
    user message and is counted in :attr:`parse_errors` and the verdict (see the module
    docstring); a readable call that fails to run (arguments the tool refuses, an error inside
    it) comes back as its tool message and is recorded in :attr:`trace`.
    """

    max_turns = 8
    parser: str = "hermes"
    max_calls_per_turn: int = 8
    finish_tool: str | None = None
    end_on_parse_error: bool = False

    def __init__(
        self,
        tasks: Any = None,
        *,
        parser: str | None = None,
        max_calls_per_turn: int | None = None,
        end_on_parse_error: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if parser is not None:
            self.parser = parser
        if max_calls_per_turn is not None:
            self.max_calls_per_turn = max_calls_per_turn
        if end_on_parse_error is not None:
            self.end_on_parse_error = end_on_parse_error
        super().__init__(tasks, **kwargs)
        self.toolbox = Toolbox(self.load_tools())
        self.tools = self.toolbox.schemas()
        self.state: Any = None
        self.trace: list[ToolOutcome] = []
        self.parse_errors = 0
        """Calls the parser could not read, over the episode so far."""
        self._parsed: ParsedTurn | None = None

    # ------------------------------------------------------------------ hooks

    def load_tools(self) -> Sequence[Tool | Callable[..., Any]]:
        """The tools offered to the model."""
        return []

    def new_state(self, task: Task) -> Any:
        """A fresh world for an episode (default None), handed to tools as ``state``."""
        return None

    def hidden_arguments(self) -> dict[str, Any]:
        """Values for the tools' hidden parameters (default: ``{"state": self.state}``)."""
        return {"state": self.state}

    def grade(self, answer: str | None) -> Verdict | float | bool:
        """The reward when the episode ends: ``answer`` is the model's final text (or None when
        the ``finish_tool`` ended it). The default scores the answer with :meth:`verify`."""
        return self.verify(self.task, answer or "")

    # ------------------------------------------------------------------ the loop

    def start(self, task: Task) -> list[Message]:
        self.state = self.new_state(task)
        self.trace = []
        self.parse_errors = 0
        self._parsed = None
        return super().start(task)

    def step(self, action: Action) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        """:meth:`TextEnv.step`, whose ``info`` also holds ``"call_errors"`` (the messages of
        this turn's malformed calls) and ``"parse_errors"`` (their count over the episode)."""
        self._parsed = None  # an over-long action is not parsed: no errors from the last turn
        observation, reward, terminated, truncated, info = super().step(action)
        errors = self._parsed.errors if self._parsed is not None else []
        info["call_errors"] = [error.message for error in errors]
        info["parse_errors"] = self.parse_errors
        return observation, reward, terminated, truncated, info

    def interpret(self, message: AssistantMessage) -> AssistantMessage:
        parsed = parse_message(message, self.parser, tools=self.tools)
        self._parsed = parsed
        if not parsed.calls:
            if message.get("tool_calls"):
                # the message's own tool_calls, none usable (parsed.errors say why): record it
                # without them, so that respond runs none of them (json.loads of bad arguments
                # crashed the episode as an env failure, unscored) and no call goes unanswered
                kept = {key: value for key, value in message.items() if key != "tool_calls"}
                kept["content"] = kept.get("content") or ""
                return kept
            return message
        parser = get_parser(self.parser) if isinstance(self.parser, str) else self.parser
        return as_assistant_message(
            parsed,
            # call001_0: at least 9 characters, as Mistral's templates require of call ids
            id_prefix=f"call{self.turn + 1:03d}",
            limit=self.max_calls_per_turn,
            arguments=getattr(parser, "template_arguments", "object"),
        )

    def respond(self, message: AssistantMessage) -> Turn:
        parsed = self._parsed or ParsedTurn(content=message_text(message), calls=[], errors=[])
        calls = message.get("tool_calls") or []
        malformed = sum(error.kind == "malformed" for error in parsed.errors)
        self.parse_errors += malformed
        if not calls and not parsed.errors:
            return Turn(done=True, verdict=self._graded(message_text(message)))
        replies: list[Message] = []
        finished = False
        for call in calls:
            function = call["function"]
            arguments = function.get("arguments")
            if isinstance(arguments, str):  # the OpenAI wire form (template_arguments="json")
                arguments = json.loads(arguments)
            outcome = self.toolbox.run(
                function["name"],
                arguments if isinstance(arguments, dict) else {},
                hidden=self.hidden_arguments(),
            )
            self.trace.append(outcome)
            replies.append(
                {
                    "role": "tool",
                    "tool_call_id": call.get("id", ""),
                    "name": function["name"],
                    "content": outcome.content,
                }
            )
            finished = finished or (outcome.ok and function["name"] == self.finish_tool)
        problems = [error.message for error in parsed.errors]
        if len(parsed.calls) > self.max_calls_per_turn:
            problems.append(
                f"only the first {self.max_calls_per_turn} tool calls of a turn run; "
                f"{len(parsed.calls) - self.max_calls_per_turn} were ignored"
            )
        if problems:  # after the tool messages, which must follow their calls directly
            replies.append(
                {"role": "user", "content": "Tool call errors:\n- " + "\n- ".join(problems)}
            )
        if finished:
            graded = self._graded(None)
            if malformed:
                graded = graded.model_copy(update={"parse_errors": malformed})
            return Turn(messages=replies, done=True, verdict=graded)
        if not calls and not malformed:  # only calls to tools not offered: nothing ran
            unknown = len(parsed.errors)
            reason = f"{unknown} call{'s' if unknown > 1 else ''} to tools not offered"
            return Turn(messages=replies, verdict=Verdict(reward=0.0, reason=reason))
        if not calls:  # every call of the turn was malformed: nothing ran
            verdict = Verdict(
                reward=0.0,
                reason=f"{malformed} malformed tool call{'s' if malformed > 1 else ''}",
                error=f"{PARSE_ERROR}: "
                + "; ".join(e.message for e in parsed.errors if e.kind == "malformed"),
                parse_errors=malformed,
            )
            return Turn(messages=replies, done=self.end_on_parse_error, verdict=verdict)
        return Turn(
            messages=replies,
            verdict=Verdict(reward=0.0, reason=f"{len(calls)} tool calls", parse_errors=malformed),
        )

    def _graded(self, answer: str | None) -> Verdict:
        return self._checked(self.grade, answer)
