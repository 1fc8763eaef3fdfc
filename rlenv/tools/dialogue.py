"""``UserSimEnv``: a tool-using agent talking to a simulated user who holds a hidden goal.

The setting of tau-bench (Yao et al. 2024, arXiv:2406.12045; github.com/sierra-research/tau-bench,
``tau_bench/envs/base.py`` and ``tau_bench/envs/user.py``): the model plays a service agent with
tools over a database; the other side of the conversation is a *user simulator* that knows a goal
the agent does not ("you want to return the blue kettle of your last order, refund to your gift
card") and reveals it only as asked. The agent's turn either calls tools (their results come back
as ``tool`` messages, as in :class:`~rlenv.tools.ToolEnv`) or speaks to the user: its text, with
its reasoning stripped (:func:`rlenv.reasoning.final_text`), goes to the simulator, whose reply is
the next ``user`` message. **Only the user ends the dialogue**, by writing :data:`STOP`
(``###STOP###``, tau-bench's token) once the goal is met or cannot be; the agent's only way out
is the env's ``finish_tool`` (a hand-off to a human, when the env has one). The episode is then
graded: by default as tau-bench does, on the final database and the outputs the user had to be
told.

The user is given as ``user=`` on the env:

- ``"scripted"`` (the default): :class:`ScriptedUser`, a deterministic rule-based user that
  answers what the agent asks from the goal's facts. Cheap and reproducible: for tests,
  ``check_env`` and debugging an agent. It is not a language model: an agent that phrases its
  questions oddly may confuse it (it then says it did not understand).
- a rlenv :class:`~rlenv.rollout.Policy` (a model: ``TransformersPolicy``, ``OpenAIPolicy``...)
  or a function ``conversation -> text``: :class:`PolicyUser` gives it the goal in a system
  prompt and the dialogue from the user's side (the agent's messages as ``user`` messages, its
  own as ``assistant``), as tau-bench's LLM user is prompted. Seeded per task and turn, so a
  model user that honours seeds replies the same way each time.

**Dual control.** The user may hold state the agent cannot read (in ``Retail-v0``: the texts on
the user's phone, where the agent's verification codes arrive). :meth:`UserSimEnv.user_device`
returns it; the scripted user reads it when asked, and a model user is shown each new entry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rlenv.chat import AssistantMessage, Message, message_text
from rlenv.env import Action, Observation, Turn
from rlenv.errors import RLEnvError
from rlenv.reasoning import final_text
from rlenv.rollout.policy import as_text_function
from rlenv.tasks import Task
from rlenv.tools.env import ToolEnv
from rlenv.verdict import Verdict

__all__ = [
    "STOP",
    "PolicyUser",
    "ScriptedUser",
    "SimulatedUser",
    "UserGoal",
    "UserSimEnv",
    "outputs_said",
]

STOP = "###STOP###"
"""What the user writes to end the dialogue (tau-bench's token)."""

GREETING = "Hi! How can I help you today?"
"""The agent's opening line, as the user sees it (the agent's transcript starts with the user)."""

MAX_USER_CHARS = 4_000
"""A simulated user's message is cut to this length."""


@dataclass(frozen=True)
class UserGoal:
    """What the simulated user wants, known to the user and never shown to the agent.

    - ``instruction``: the goal in plain English, in the second person ("You are Ana Silva,
      zip 02139. You want to ..."): what a model user is told (tau-bench's ``instruction``).
    - ``opening``: the scripted user's first message (the request, without identifying data).
    - ``facts``: ``(keywords, answer)`` pairs: when the agent's message contains one of the
      keywords (lower case), the scripted user gives that answer. Checked in order; every
      matching fact is answered, so "your email and the order number?" gets both.
    - ``requests``: further requests, raised one at a time when the agent asks whether there is
      anything else; when none is left the user ends the dialogue.
    - ``confirm``: whether the user says yes when the agent asks to confirm an action.
    """

    instruction: str
    opening: str
    facts: tuple[tuple[tuple[str, ...], str], ...] = ()
    requests: tuple[str, ...] = ()
    confirm: bool = True

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UserGoal:
        """From the JSON form a task stores in its metadata (lists for tuples)."""
        return cls(
            instruction=data["instruction"],
            opening=data["opening"],
            facts=tuple((tuple(keys), answer) for keys, answer in data.get("facts", ())),
            requests=tuple(data.get("requests", ())),
            confirm=bool(data.get("confirm", True)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "instruction": self.instruction,
            "opening": self.opening,
            "facts": [[list(keys), answer] for keys, answer in self.facts],
            "requests": list(self.requests),
            "confirm": self.confirm,
        }


class SimulatedUser:
    """The other side of the dialogue: :meth:`start` gives the user's first message and
    :meth:`reply` answers each agent message. ``device`` returns the user's private state
    (dual control), newest last. Implementations must be deterministic given their inputs."""

    def start(self, goal: UserGoal, device: Callable[[], list[str]]) -> str:
        raise NotImplementedError

    def reply(self, agent_text: str) -> str:
        raise NotImplementedError


# Phrases by which an agent asks to confirm an action, or whether the user needs anything else.
_CONFIRM = ("confirm", "proceed", "shall i", "should i", "go ahead", "(yes/no)", "yes or no")
_ANYTHING_ELSE = ("anything else", "something else", "any other", "help you with more")


class ScriptedUser(SimulatedUser):
    """A rule-based user: answers the facts the agent asks for, says yes to a confirmation
    (when the goal says so), raises its next request, or ends the dialogue, when the agent asks
    whether there is anything else. Reads its device for "code" questions (dual control).

    The rules, in order, on the agent's message in lower case: "anything else" (and the like)
    → the next request, or :data:`STOP` when none is left; otherwise every fact whose keyword
    appears, and "Yes, please go ahead." (or a refusal) when the message asks to confirm; a
    message asking for a "code" is answered from the newest device entry holding digits;
    nothing matched → "Sorry, I'm not sure what you need from me." and the current request again.
    """

    def __init__(self) -> None:
        self.goal: UserGoal | None = None
        self._device: Callable[[], list[str]] = list
        self._pending: list[str] = []
        self._current = ""

    def start(self, goal: UserGoal, device: Callable[[], list[str]]) -> str:
        self.goal, self._device = goal, device
        self._pending = list(goal.requests)
        self._current = goal.opening
        return goal.opening

    def reply(self, agent_text: str) -> str:
        if self.goal is None:
            raise RLEnvError("ScriptedUser.reply before start")
        text = agent_text.lower()
        if any(phrase in text for phrase in _ANYTHING_ELSE):
            if not self._pending:
                return f"No, that's everything. Thank you! {STOP}"
            self._current = self._pending.pop(0)
            return self._current
        answers = [answer for keys, answer in self.goal.facts if any(k in text for k in keys)]
        if "code" in text.replace("zip code", ""):  # a verification code, not a zip code
            code = next((entry for entry in reversed(self._device()) if _digits(entry)), None)
            answers.append(
                f"The code on my phone is {_digits(code)}."
                if code
                else "I haven't received any code on my phone."
            )
        if any(phrase in text for phrase in _CONFIRM):
            answers.append(
                "Yes, please go ahead." if self.goal.confirm else "No, please don't do that."
            )
        if not answers:
            return f"Sorry, I'm not sure what you need from me. {self._current}"
        return " ".join(dict.fromkeys(answers))  # each answer once, in order


def _digits(text: str | None) -> str:
    """The last run of 4 or more digits in ``text`` ('' when none)."""
    if not text:
        return ""
    runs = [run for run in "".join(c if c.isdigit() else " " for c in text).split() if len(run) > 3]
    return runs[-1] if runs else ""


USER_SYSTEM_PROMPT = """You are a customer writing to a company's customer-service agent.

Your goal (the agent does not know it):
{instruction}

Rules:
- Write one short message at a time, as the customer would; never write the agent's part.
- Reveal only what the agent needs for the current step, not the whole goal at once.
- Never invent information your goal does not give (an order number, an email...): if you are
  asked for something you do not know, say you do not know it.
- If something appears on your phone, you can read it; the agent cannot.
- When your goal is met, or the agent cannot meet it, write {stop} alone to end the
  conversation. Do not end it before."""


class PolicyUser(SimulatedUser):
    """A user played by a model (any rlenv ``Policy``) or by a function
    ``conversation -> text``: the goal goes in a system prompt (:data:`USER_SYSTEM_PROMPT`,
    tau-bench's rules in our words); the dialogue is shown from the user's side, the agent's
    messages as ``user`` messages and the user's own as ``assistant`` messages. New device
    entries are shown with the next agent message. The reply's reasoning is stripped and the
    text cut to :data:`MAX_USER_CHARS`.

    Args:
        responder: A rlenv ``Policy`` or a function of the user's conversation.
        seed: Seeds the model's sampling: turn ``t`` of a dialogue gets a hash of (seed, t).
        max_new_tokens: The most tokens of one user message.
        temperature: The model's sampling temperature.
    """

    def __init__(
        self,
        responder: Any,
        *,
        seed: int = 0,
        max_new_tokens: int = 256,
        temperature: float = 1.0,
    ) -> None:
        self.respond = as_text_function(responder)
        self.seed, self.max_new_tokens, self.temperature = seed, max_new_tokens, temperature
        self.conversation: list[Message] = []
        self._device: Callable[[], list[str]] = list
        self._seen = 0

    def start(self, goal: UserGoal, device: Callable[[], list[str]]) -> str:
        prompt = USER_SYSTEM_PROMPT.format(instruction=goal.instruction, stop=STOP)
        self.conversation = [{"role": "system", "content": prompt}]
        self._device, self._seen = device, len(device())
        return self._ask(GREETING)

    def reply(self, agent_text: str) -> str:
        entries = self._device()
        new = entries[self._seen :]
        self._seen = len(entries)
        shown = "".join(f"[On your phone, a new message: {entry}]\n" for entry in new)
        return self._ask(shown + agent_text)

    def _ask(self, agent_text: str) -> str:
        self.conversation.append({"role": "user", "content": agent_text})
        turn = sum(m["role"] == "assistant" for m in self.conversation)
        text = self.respond(
            list(self.conversation),
            seed=_seed(f"{self.seed}:{turn}"),
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
        )
        text = (final_text(text) or "").strip()[:MAX_USER_CHARS]
        self.conversation.append({"role": "assistant", "content": text})
        return text


def _seed(key: str) -> int:
    """A 31-bit seed (what every server's seed field accepts) from a hash of ``key``."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=4).digest()) % 2**31


def outputs_said(outputs: Sequence[str], said: Sequence[str]) -> dict[str, bool]:
    """tau-bench's output rule (``tau_bench/envs/base.py``, ``calculate_reward``): each required
    output must appear, lower-cased, in some message the agent sent the user, lower-cased with
    its commas removed (so "1,093.34" counts for "1093.34")."""
    spoken = [text.lower().replace(",", "") for text in said]
    return {output: any(output.lower() in text for text in spoken) for output in outputs}


@dataclass
class _Dialogue:
    user: SimulatedUser
    said: list[str] = field(default_factory=list)
    user_turns: int = 0
    failed: str | None = None


class UserSimEnv(ToolEnv):
    """A :class:`~rlenv.tools.ToolEnv` whose model talks to a simulated user (module docstring).

    Override :meth:`load_tools`, :meth:`new_state`, :meth:`user_goal` (the task's hidden goal)
    and :meth:`grade` (the reward when the user ends the dialogue, or the ``finish_tool`` ends
    it; :attr:`said` holds what the agent told the user); optionally :meth:`user_device`.

    Args:
        user: ``"scripted"`` (default), a rlenv ``Policy`` or a function
            ``conversation -> text`` (see the module docstring).
        user_seed: Seeds a model user's sampling (with the task and the turn).
        user_temperature: A model user's sampling temperature.
        max_user_turns: The most user replies; an agent message past them ends the episode with
            reward 0 (the user gave up).

    A user simulator that fails (raises, or returns something that is not text) ends the
    episode with reward 0 and ``scored=False``: it says nothing about the agent.
    """

    max_turns = 30
    max_user_turns = 20

    def __init__(
        self,
        tasks: Any = None,
        *,
        user: Any = "scripted",
        user_seed: int = 0,
        user_temperature: float = 1.0,
        max_user_turns: int | None = None,
        **kwargs: Any,
    ) -> None:
        if user != "scripted":
            as_text_function(user)  # a clear error now, not at the first reset
        self.user = user
        self.user_seed, self.user_temperature = user_seed, user_temperature
        if max_user_turns is not None:
            if not isinstance(max_user_turns, int) or max_user_turns < 1:
                raise ValueError(
                    f"max_user_turns must be a positive integer, got {max_user_turns!r}"
                )
            self.max_user_turns = max_user_turns
        super().__init__(tasks, **kwargs)
        self._dialogue: _Dialogue | None = None

    # ------------------------------------------------------------------ hooks

    def user_goal(self, task: Task) -> UserGoal:
        """The task's hidden goal (default: ``task.metadata["user_goal"]``, a dict)."""
        return UserGoal.from_dict(task.metadata["user_goal"])

    def user_device(self) -> list[str]:
        """The user's private state the agent cannot read, newest last (default none)."""
        return []

    # ------------------------------------------------------------------ state

    @property
    def said(self) -> list[str]:
        """What the agent said to the user this episode (reasoning stripped), in order."""
        return list(self._dialogue.said) if self._dialogue is not None else []

    def make_user(self, task: Task) -> SimulatedUser:
        """A fresh simulated user for ``task``, as ``user=`` says."""
        if self.user == "scripted":
            return ScriptedUser()
        return PolicyUser(
            self.user, seed=_seed(f"{self.user_seed}:{task.id}"), temperature=self.user_temperature
        )

    # ------------------------------------------------------------------ the loop

    def start(self, task: Task) -> list[Message]:
        opening = super().start(task)  # the system prompt (the agent's policy); a fresh state
        opening = [message for message in opening if message["role"] == "system"]
        user = self.make_user(task)
        self._dialogue = _Dialogue(user)
        try:
            first = user.start(self.user_goal(task), self.user_device)
        except Exception as error:  # the simulator's fault: say so at the first step
            self._dialogue.failed = f"{type(error).__name__}: {error}"
            first = ""
        return [*opening, {"role": "user", "content": first}]

    def step(self, action: Action) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = super().step(action)
        dialogue = self._dialogue
        info["user_turns"] = dialogue.user_turns if dialogue is not None else 0
        return observation, reward, terminated, truncated, info

    def respond(self, message: AssistantMessage) -> Turn:
        dialogue = self._dialogue
        if dialogue is not None and dialogue.failed is not None:
            return self._simulator_failed(dialogue.failed)
        parsed = self._parsed
        if message.get("tool_calls") or (parsed is not None and parsed.errors):
            return super().respond(message)  # tool calls: run them, as ToolEnv does
        text = (final_text(message_text(message)) or "").strip()
        dialogue.said.append(text)
        if dialogue.user_turns >= self.max_user_turns:
            return self._out_of_user_turns()
        dialogue.user_turns += 1
        try:
            reply = dialogue.user.reply(text)
            if not isinstance(reply, str):
                raise TypeError(f"the user's reply is {type(reply).__name__}, not str")
        except Exception as error:
            dialogue.failed = f"{type(error).__name__}: {error}"
            return self._simulator_failed(dialogue.failed)
        reply = reply[:MAX_USER_CHARS]
        if STOP in reply:
            return Turn(
                messages=[{"role": "user", "content": reply}],
                done=True,
                verdict=self._graded(None),
            )
        return Turn.reply(reply, verdict=Verdict(reward=0.0, reason="the user replied"))

    def _out_of_user_turns(self) -> Turn:
        verdict = Verdict(
            reward=0.0,
            reason=f"the user's {self.max_user_turns} messages ran out before the goal was met",
            error="max_user_turns",
        )
        return Turn(done=True, verdict=verdict)

    def _simulator_failed(self, why: str) -> Turn:
        verdict = Verdict(
            reward=0.0,
            reason=f"the user simulator failed: {why}"[:500],
            error="user simulator failed",
            scored=False,
        )
        return Turn(done=True, verdict=verdict)
