"""Chat messages: the observations and actions of every rlenv environment.

Messages are plain dicts in the OpenAI / Hugging Face chat format, so an observation can go
straight into ``tokenizer.apply_chat_template(messages, tools=...)`` or an OpenAI-compatible
endpoint. Their shapes are ``TypedDict`` classes validated by pydantic: static type checkers see
the fields, pydantic reports a bad field by name, and no conversion is ever needed between a
validated message and the dict a tokenizer expects.

>>> validate_message({"role": "user", "content": "2 + 2?"})
{'role': 'user', 'content': '2 + 2?'}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config
from typing_extensions import NotRequired, Self, TypedDict

__all__ = [
    "AssistantMessage",
    "ContentPart",
    "FrozenDict",
    "FrozenList",
    "FunctionCall",
    "Message",
    "SystemMessage",
    "ToolCall",
    "ToolMessage",
    "UserMessage",
    "assistant",
    "copy_json",
    "copy_messages",
    "freeze_json",
    "is_valid_message",
    "message_text",
    "render_messages",
    "system",
    "tool",
    "user",
    "validate_assistant_message",
    "validate_message",
    "validate_messages",
]

# Unknown keys are kept, not dropped: chat templates read extras such as "reasoning_content".
_ALLOW_EXTRA = ConfigDict(extra="allow")


@with_config(_ALLOW_EXTRA)
class ContentPart(TypedDict):
    """One part of a multi-part content list, e.g. ``{"type": "text", "text": "..."}``."""

    type: str


@with_config(_ALLOW_EXTRA)
class FunctionCall(TypedDict):
    """The function a tool call names. ``arguments`` is a JSON string (OpenAI) or a dict (HF)."""

    name: str
    arguments: str | dict[str, Any]


@with_config(_ALLOW_EXTRA)
class ToolCall(TypedDict):
    """An OpenAI-format tool call inside an assistant message."""

    id: NotRequired[str]
    type: NotRequired[Literal["function"]]
    function: FunctionCall


@with_config(_ALLOW_EXTRA)
class SystemMessage(TypedDict):
    role: Literal["system"]
    content: str | list[ContentPart]


@with_config(_ALLOW_EXTRA)
class UserMessage(TypedDict):
    role: Literal["user"]
    content: str | list[ContentPart]


@with_config(_ALLOW_EXTRA)
class AssistantMessage(TypedDict):
    """What the model said. ``content`` may be ``None`` when the turn is only tool calls."""

    role: Literal["assistant"]
    content: NotRequired[str | list[ContentPart] | None]
    tool_calls: NotRequired[list[ToolCall]]


@with_config(_ALLOW_EXTRA)
class ToolMessage(TypedDict):
    """A tool's result, answering the call whose id is ``tool_call_id``."""

    role: Literal["tool"]
    content: str | list[ContentPart]
    tool_call_id: NotRequired[str]
    name: NotRequired[str]


Message = Annotated[
    Union[SystemMessage, UserMessage, AssistantMessage, ToolMessage],  # noqa: UP007
    Field(discriminator="role"),
]
"""Any chat message, told apart by its ``role``."""

_MESSAGE = TypeAdapter(Message)
_MESSAGES = TypeAdapter(list[Message])
_ASSISTANT = TypeAdapter(AssistantMessage)


def validate_message(data: Any) -> Message:
    """Validate one message dict; raises ``pydantic.ValidationError`` naming the bad field."""
    return _MESSAGE.validate_python(data)


def validate_messages(data: Any) -> list[Message]:
    """Validate a list of message dicts; raises ``pydantic.ValidationError`` naming the bad one."""
    return _MESSAGES.validate_python(data)


def validate_assistant_message(data: Any) -> AssistantMessage:
    """Validate an assistant message dict (an action given as a dict)."""
    return _ASSISTANT.validate_python(data)


def is_valid_message(data: Any) -> bool:
    """Whether ``data`` is a valid message dict (never raises)."""
    try:
        _MESSAGE.validate_python(data)
    except ValidationError:
        return False
    return True


def system(content: str) -> SystemMessage:
    """A system message."""
    return {"role": "system", "content": content}


def user(content: str) -> UserMessage:
    """A user message; environments use it for feedback between model turns."""
    return {"role": "user", "content": content}


def assistant(content: str | None, tool_calls: list[ToolCall] | None = None) -> AssistantMessage:
    """An assistant message, optionally with OpenAI-format tool calls."""
    message: AssistantMessage = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def tool(content: str, tool_call_id: str | None = None, name: str | None = None) -> ToolMessage:
    """A tool-result message."""
    message: ToolMessage = {"role": "tool", "content": content}
    if tool_call_id is not None:
        message["tool_call_id"] = tool_call_id
    if name is not None:
        message["name"] = name
    return message


def copy_json(value: Any) -> Any:
    """Copy nested dicts and lists (JSON-like data) much faster than ``copy.deepcopy``."""
    if isinstance(value, dict):
        return {key: copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copy_json(item) for item in value]
    return value


_READ_ONLY = (
    "observation messages are read-only (they are shared between observations, so an edit "
    "could not reach the environment anyway); edit a copy: dict(message) or "
    "rlenv.chat.copy_messages(observation)"
)


class _ReadOnly:
    """What :class:`FrozenDict` and :class:`FrozenList` share: every change is refused, and a
    copy, a deep copy or a pickle round trip stays read-only (as a tuple stays a tuple)."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(_READ_ONLY)

    def __reduce__(self) -> tuple[Any, ...]:
        return (freeze_json, (copy_json(self),))

    def __copy__(self) -> Self:
        return self  # read-only all the way down: a copy could not differ

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        return self


class FrozenDict(_ReadOnly, dict):
    """A ``dict`` that refuses changes: a message (or part of one) in an observation.

    It is a real ``dict`` subclass, so ``json.dumps``, pydantic, Jinja chat templates and
    ``tokenizer.apply_chat_template`` read it as they read any dict. ``dict(m)`` and
    :func:`copy_messages` give plain, editable copies; ``copy.deepcopy`` and pickling keep it
    read-only (as they keep a tuple a tuple).
    """

    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = _ReadOnly._refuse  # type: ignore[assignment]
    clear = pop = popitem = setdefault = update = _ReadOnly._refuse  # type: ignore[assignment]


class FrozenList(_ReadOnly, list):
    """A ``list`` that refuses changes (content parts, tool calls inside a frozen message)."""

    __slots__ = ()
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _ReadOnly._refuse  # type: ignore[assignment]
    append = clear = extend = insert = pop = remove = reverse = sort = _ReadOnly._refuse  # type: ignore[assignment]


def freeze_json(value: Any) -> Any:
    """A read-only copy of nested dicts and lists (:class:`FrozenDict`, :class:`FrozenList`).

    Already-frozen values are returned as they are, so freezing is done once per message: an
    environment hands the same frozen messages to every later observation, and a step costs
    O(new messages) however long the conversation is, while no caller can change the env's
    history through what it was given.
    """
    if isinstance(value, _FROZEN):
        return value
    if isinstance(value, dict):
        for item in value.values():
            if isinstance(item, _CONTAINERS) and not isinstance(item, _FROZEN):
                return FrozenDict({key: freeze_json(item) for key, item in value.items()})
        return FrozenDict(value)  # flat (a plain text message): one copy, no recursion
    if isinstance(value, list):
        return FrozenList(freeze_json(item) for item in value)
    return value


_FROZEN = (FrozenDict, FrozenList)
_CONTAINERS = (dict, list)


def copy_messages(messages: Iterable[Mapping[str, Any]]) -> list[Any]:
    """Fresh copies of ``messages``, so a caller who edits them cannot change an env's history."""
    out = []
    for message in messages:
        copied = dict(message)
        # Only a few keys hold nested mutable data; copying just those keeps this cheap.
        for key in ("content", "tool_calls"):
            value = copied.get(key)
            if isinstance(value, list):
                copied[key] = copy_json(value)
        out.append(copied)
    return out


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a message: its string content, or its text parts joined; ``""`` if none."""
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(
        part.get("text", "") for part in content if isinstance(part, Mapping) and "text" in part
    )


def render_messages(messages: Iterable[Mapping[str, Any]], *, width: int | None = None) -> str:
    """Render a conversation as plain text, one block per message (for ``render()`` and the CLI).

    ``width`` cuts each message's text to that many characters (``None`` keeps it whole).
    """
    blocks = []
    for message in messages:
        text = message_text(message)
        if width is not None and len(text) > width:
            text = text[:width] + f"... [{len(text) - width} more chars]"
        header = f"[{message.get('role', '?')}]"
        if message.get("tool_call_id"):
            header += f" (call {message['tool_call_id']})"
        lines = [header, text] if text else [header]
        for call in message.get("tool_calls") or ():
            function = call.get("function", {}) if isinstance(call, Mapping) else {}
            lines.append(f"  -> {function.get('name')}({function.get('arguments')})")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
