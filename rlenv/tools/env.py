"""``ToolEnv``: the multi-turn tool loop.

Each model turn is parsed for tool calls (in the env's format, see :mod:`rlenv.tools.parsers`);
the calls run in order (at most ``max_calls_per_turn``), their results come back as ``tool``
messages, and the model goes on — until it answers without a call, calls the ``finish_tool``,
or runs out of ``max_turns`` (truncated). The conversation is a standard tool-calling
transcript: the model's message carries the parsed ``tool_calls`` (arguments as objects, the
form Hugging Face chat templates expect), so ``tokenizer.apply_chat_template(observation,
tools=info["tools"])`` renders it directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rlenv.chat import AssistantMessage, Message, message_text
from rlenv.env import TextEnv, Turn
from rlenv.tasks import Task
from rlenv.tools.core import Tool, Toolbox, ToolOutcome
from rlenv.tools.parsers import ParsedTurn, as_assistant_message, parse_message
from rlenv.verdict import Verdict

__all__ = ["ToolEnv"]


class ToolEnv(TextEnv):
    """A :class:`~rlenv.TextEnv` whose model can call tools.

    Override :meth:`load_tools` (the tools: ``@rlenv.tools.tool`` functions), optionally
    :meth:`new_state` (a fresh world per episode, passed to tools' hidden ``state`` argument),
    and :meth:`grade` (the final reward, from the answer, :attr:`trace` and :attr:`state`).

    Class attributes (constructor arguments override them): ``parser`` (``"hermes"``), the
    tool-call format; ``max_calls_per_turn`` (8); ``finish_tool`` (None), a tool whose successful
    call ends the episode; ``max_turns`` (8).

    Malformed calls (broken JSON, unknown tools, wrong argument types) never raise: they come
    back to the model as messages it can learn from, and are recorded in :attr:`trace`.
    """

    max_turns = 8
    parser: str = "hermes"
    max_calls_per_turn: int = 8
    finish_tool: str | None = None

    def __init__(
        self,
        tasks: Any = None,
        *,
        parser: str | None = None,
        max_calls_per_turn: int | None = None,
        **kwargs: Any,
    ) -> None:
        if parser is not None:
            self.parser = parser
        if max_calls_per_turn is not None:
            self.max_calls_per_turn = max_calls_per_turn
        super().__init__(tasks, **kwargs)
        self.toolbox = Toolbox(self.load_tools())
        self.tools = self.toolbox.schemas()
        self.state: Any = None
        self.trace: list[ToolOutcome] = []
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
        self._parsed = None
        return super().start(task)

    def interpret(self, message: AssistantMessage) -> AssistantMessage:
        parsed = parse_message(message, self.parser, tools=self.tools)
        self._parsed = parsed
        if not parsed.calls:
            return message
        return as_assistant_message(
            parsed, id_prefix=f"call_{self.turn + 1}", limit=self.max_calls_per_turn
        )

    def respond(self, message: AssistantMessage) -> Turn:
        parsed = self._parsed or ParsedTurn(content=message_text(message), calls=[], errors=[])
        calls = message.get("tool_calls") or []
        if not calls and not parsed.errors:
            return Turn(done=True, verdict=self._graded(message_text(message)))
        replies: list[Message] = []
        finished = False
        for call in calls:
            function = call["function"]
            arguments = function.get("arguments")
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
            return Turn(messages=replies, done=True, verdict=self._graded(None))
        return Turn(
            messages=replies, verdict=Verdict(reward=0.0, reason=f"{len(calls)} tool calls")
        )

    def _graded(self, answer: str | None) -> Verdict:
        return self._checked(self.grade, answer)
