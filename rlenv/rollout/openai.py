"""``OpenAIPolicy``: any OpenAI-compatible chat-completions endpoint as a policy.

vLLM, SGLang, llama.cpp's server and hosted APIs speak the same protocol. Requests run
concurrently up to a limit; rate limits (429), server errors (5xx), timeouts and dropped
connections are retried with exponential backoff; ``tools=`` is passed through and the
response's ``tool_calls`` come back as a parsed assistant message. Standard library only.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rlenv.chat import Message
from rlenv.errors import RLEnvError
from rlenv.rollout.policy import Completion, Policy, SamplingParams

__all__ = ["OpenAIPolicy", "PolicyError", "to_openai_messages"]

_RETRYABLE = {408, 409, 425, 429, 500, 502, 503, 504}


class PolicyError(RLEnvError, RuntimeError):
    """The backend failed for good (after retries, or with an error that retrying cannot fix)."""


def to_openai_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Messages as the OpenAI API wants them: tool-call arguments as JSON strings."""
    converted = []
    for message in messages:
        copy = dict(message)
        if copy.get("tool_calls"):
            calls = []
            for call in copy["tool_calls"]:
                function = dict(call["function"])
                if not isinstance(function.get("arguments"), str):
                    function["arguments"] = json.dumps(function.get("arguments") or {})
                calls.append({**call, "type": "function", "function": function})
            copy["tool_calls"] = calls
        converted.append(copy)
    return converted


class OpenAIPolicy(Policy):
    """A policy served by an OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        base_url: E.g. ``http://localhost:8000/v1``.
        model: The model name the server expects.
        api_key: Sent as a bearer token (default: ``$OPENAI_API_KEY``, else none).
        max_concurrency: Requests in flight at once.
        timeout: Seconds per request.
        max_retries: Retries of a retryable failure (429, 5xx, timeouts, dropped connections).
        backoff: First retry delay in seconds; doubles each time.
        extra_body: Extra request fields (e.g. ``{"top_k": 20}`` for vLLM).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        max_concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be positive")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.extra_body = dict(extra_body or {})
        self.name = f"openai:{model}"

    def generate(
        self,
        conversations: Sequence[Sequence[Message]],
        tools: Sequence[Sequence[dict[str, Any]]],
        params: SamplingParams,
    ) -> list[Completion]:
        jobs = list(zip(conversations, tools, strict=True))
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, max(1, len(jobs)))) as pool:
            return list(pool.map(lambda job: self._complete(job[0], job[1], params), jobs))

    def _complete(
        self,
        conversation: Sequence[Message],
        tools: Sequence[dict[str, Any]],
        params: SamplingParams,
    ) -> Completion:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": to_openai_messages(conversation),
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            **self.extra_body,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if tools:
            body["tools"] = list(tools)
        response = self._post(body)
        try:
            choice = response["choices"][0]
            message = choice["message"]
        except (KeyError, IndexError, TypeError):
            raise PolicyError(
                f"{self.url}: a response without choices: {str(response)[:300]}"
            ) from None
        text = message.get("content") or ""
        parsed = None
        if message.get("tool_calls"):
            parsed = {
                "role": "assistant",
                "content": message.get("content"),
                "tool_calls": message["tool_calls"],
            }
        return Completion(
            text=text,
            message=parsed,
            finish_reason=choice.get("finish_reason"),
            extra={"usage": response.get("usage", {})},
        )

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        delay = self.backoff
        last_error = "no attempt made"
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(delay)
                delay *= 2
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                    return json.loads(reply.read())
            except urllib.error.HTTPError as error:
                detail = error.read()[:300].decode("utf-8", "replace")
                last_error = f"HTTP {error.code}: {detail}"
                if error.code not in _RETRYABLE:
                    raise PolicyError(f"{self.url}: {last_error}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
                last_error = f"{type(error).__name__}: {error}"
            except json.JSONDecodeError as error:
                last_error = f"not JSON: {error}"
        raise PolicyError(f"{self.url}: failed after {self.max_retries + 1} attempts: {last_error}")
