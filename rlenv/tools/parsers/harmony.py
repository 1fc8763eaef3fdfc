"""GPT-OSS Harmony: calls are commentary-channel messages addressed ``to=functions.NAME``."""

from __future__ import annotations

import re
from collections.abc import Sequence

from rlenv.tools.parsers._base import (
    ParsedCall,
    ParsedTurn,
    _arguments,
    _Calls,
    _check_name,
    _decode,
    _dumps,
    _Parser,
    _Problem,
    _skip_space,
)

# --- GPT-OSS Harmony --------------------------------------------------------------------------

_HARMONY_MESSAGE = "<|message|>"
_HARMONY_ENDS = ("<|call|>", "<|end|>", "<|return|>")
_HARMONY_RECIPIENT = re.compile(r"\bto=(?:functions\.)?([^\s<]{1,200})")
_HARMONY_CHANNEL = re.compile(r"<\|channel\|>\s*(\w+)")


class HarmonyParser(_Parser):
    """GPT-OSS's Harmony format: a turn is a run of messages, each a header, ``<|message|>``,
    its body and an end token.

    A call is a message addressed to a function, on the commentary channel:
    ``<|channel|>commentary to=functions.NAME <|constrain|>json<|message|>{...}<|call|>`` (the
    recipient may also stand before ``<|channel|>``). The ``final`` channel, and commentary
    addressed to no one (a preamble), are the content. The ``analysis`` channel is reasoning
    (:attr:`ParsedTurn.reasoning`): never a call and never content, even when it is addressed to
    a function. A call whose end token is missing (engines strip the stop token ``<|call|>``;
    the token limit) is read when its JSON is complete; when the JSON itself is cut off, it is
    an error that says so, never a call.
    """

    name = "harmony"
    reasoning_openers = ()  # the analysis channel is its reasoning; <think> is plain text here

    def _parse(self, text: str) -> ParsedTurn:
        calls, content, reasoning = _Calls(), [], []
        for header, body, ended in _harmony_messages(text):
            channel = _HARMONY_CHANNEL.search(header)
            channel_name = channel.group(1) if channel else ""
            recipient = _HARMONY_RECIPIENT.search(header)
            if channel_name == "analysis":
                reasoning.append(body)  # never a call, never the answer
                continue
            if recipient is None or recipient.group(1) == "assistant":
                content.append(body)
                continue
            if calls.full:
                calls.overflow(body)
                break
            try:
                name = _check_name(recipient.group(1))
                value, stop = _decode_arguments(body, ended)
                if body[stop:].strip():
                    raise _Problem("unexpected text after the arguments' JSON object")
                calls.add(ParsedCall(name, _arguments(value, "arguments")))
            except _Problem as problem:
                end = _HARMONY_MESSAGE + body + ("<|call|>" if ended else "")
                calls.fail(problem, header + end)
        return calls.turn(content, reasoning)

    def render(self, calls: Sequence[ParsedCall], content: str = "") -> str:
        """The completion after the prompt's ``<|start|>assistant``: the content on the final
        channel, or one commentary message per call addressed to its function."""
        messages = []
        if content.strip():
            messages.append(f"<|channel|>final{_HARMONY_MESSAGE}{content.strip()}<|end|>")
        for call in calls:
            messages.append(
                f"<|channel|>commentary to=functions.{call.name} <|constrain|>json"
                f"{_HARMONY_MESSAGE}{_dumps(call.arguments)}<|call|>"
            )
        return "<|start|>assistant".join(messages)


def _decode_arguments(body: str, ended: bool) -> tuple[object, int]:
    """The call's JSON and where it stops; without an end token, JSON that does not decode was
    cut off (the token limit), and the error says so."""
    try:
        return _decode(body, _skip_space(body, 0))
    except _Problem as problem:
        if ended:
            raise
        raise _Problem(f"the call was cut off before <|call|> ({problem})") from None


def _harmony_messages(text: str) -> list[tuple[str, str, bool]]:
    """``(header, body, ended)`` of each message of a Harmony completion, in order."""
    messages = []
    for chunk in text.split("<|start|>"):
        if _HARMONY_MESSAGE not in chunk:
            if chunk.strip() and not messages and "<|channel|>" not in chunk:
                messages.append(("", chunk, True))  # plain text before any message
            elif _HARMONY_RECIPIENT.search(chunk):
                messages.append((chunk, "", False))  # a call cut off inside its header
            continue
        header, body = chunk.split(_HARMONY_MESSAGE, 1)
        ends = [index for token in _HARMONY_ENDS if (index := body.find(token)) >= 0]
        ended = bool(ends)
        messages.append((header, body[: min(ends)] if ends else body, ended))
    return messages
