"""``OpenAIPolicy``: any OpenAI-compatible endpoint as a policy.

vLLM, SGLang, llama.cpp's server and hosted APIs speak the same protocol. Requests run
concurrently up to a limit; rate limits (429), server errors (5xx), timeouts and dropped
connections are retried with exponential backoff; ``tools=`` is passed through and the
response's ``tool_calls`` come back as a parsed assistant message. Standard library only.

Each conversation is its own request with its own ``seed`` (``SamplingParams.seeds``, else
:func:`~rlenv.rollout.policy.row_seed`): vLLM seeds each request's sampler with its ``seed``,
so the samples of a group, which send identical messages, would otherwise come back identical.

For training, the policy can also return the exact token ids and the sampler's log-probs
(``token_ids=True``, or ``tokenizer=``: token in, token out over ``/completions``). The field
names are vLLM's and SGLang's, read from their servers' source:

- vLLM, ``vllm/entrypoints/openai/chat_completion/protocol.py`` and
  ``vllm/entrypoints/openai/completion/protocol.py`` (read at commit 002032ee2b18): requests take
  ``return_token_ids`` (the response then carries ``prompt_token_ids``, at the top level for chat
  and in each choice for completions, and ``choices[i].token_ids``) and
  ``return_tokens_as_token_ids`` (log-prob tokens as ``"token_id:123"``); chat log-probs are
  ``choices[i].logprobs.content[j].logprob``, completion log-probs
  ``choices[i].logprobs.token_logprobs[j]`` (``vllm/entrypoints/openai/completion/serving.py``
  fills them one per id of ``token_ids``).
- SGLang, ``python/sglang/srt/entrypoints/openai/protocol.py`` and ``serving_completions.py``
  (read at commit 004c82e07d87): ``return_token_ids`` gives ``choices[i].token_ids`` (and, for
  completions, ``choices[i].prompt_token_ids``); chat needs ``return_prompt_token_ids`` for
  ``choices[i].prompt_token_ids``. Log-probs have the same OpenAI shapes, tokens as text.

Which distribution the log-probs describe is the server's setting, not the request's. vLLM's
default ``--logprobs-mode raw_logprobs`` reports them *before* temperature
(``vllm/config/model.py``); start it with ``--logprobs-mode processed_logprobs`` to get them
at the sampling temperature, as :attr:`Completion.logprobs` promises (they equal it while
``top_p == 1``). SGLang reports them at the temperature unless ``SGLANG_RETURN_ORIGINAL_LOGPROB``
is set (``python/sglang/srt/layers/sampler.py``).
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
from rlenv.rollout.policy import Completion, Policy, SamplingParams, row_seed

__all__ = ["OpenAIPolicy", "PolicyError", "to_openai_messages"]

_RETRYABLE = {408, 409, 425, 429, 500, 502, 503, 504}

# Sampling fields a training request pins, which vLLM and SGLang would otherwise fill from the
# model's generation_config ("user -> server default -> OpenAI default" in vLLM's
# to_sampling_params; get_param in SGLang's). -1 disables top-k in both (vLLM "quietly accepts
# -1 as disabled", vllm/sampling_params.py).
_TRAINING_FIELDS = {"top_k": -1, "min_p": 0.0, "repetition_penalty": 1.0}


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
    """A policy served by an OpenAI-compatible endpoint (``/chat/completions`` or, with a
    tokenizer, ``/completions``).

    Args:
        base_url: E.g. ``http://localhost:8000/v1``.
        model: The model name the server expects.
        api_key: Sent as a bearer token (default: ``$OPENAI_API_KEY``, else none).
        max_concurrency: Requests in flight at once.
        timeout: Seconds per request.
        max_retries: Retries of a retryable failure (429, 5xx, timeouts, dropped connections).
        backoff: First retry delay in seconds; doubles each time.
        extra_body: Extra request fields (e.g. ``{"top_k": 20}`` for vLLM); they override the
            policy's own.
        token_ids: Ask a vLLM or SGLang server for the prompt's and the completion's token ids
            and the sampled tokens' log-probs (the fields are in the module's docstring), and
            fill :class:`~rlenv.rollout.Completion`'s ``prompt_token_ids``,
            ``completion_token_ids`` and ``logprobs``. A response without them raises
            :class:`PolicyError` rather than giving None: a trainer asked for them, and a None
            would only fail later, further from its cause. The server still renders the chat
            template, so a multi-turn episode's next prompt is the server's re-rendering of the
            transcript, which need not extend the ids the model generated;
            ``Trajectory.token_sequence`` then refuses the episode. Single-turn episodes are
            exact. Training mode also pins ``top_k=-1``, ``min_p=0`` and
            ``repetition_penalty=1``, which both servers otherwise take from the model's
            ``generation_config`` (Qwen2.5's has ``top_k=20``), sampling from a distribution the
            trainer does not recompute.
        tokenizer: The served model's tokenizer, with its chat template. The policy then builds
            each prompt's ids itself (the same code as ``TransformersPolicy``:
            :class:`~rlenv.rollout.chat_tokens.ChatTokens`), sends them as the ``prompt`` of
            ``/completions`` and gets the generated ids back: token in, token out. It implies
            ``token_ids=True`` and sets ``supports_prefixes``, so a multi-turn episode extends
            the exact ids so far and stays one token sequence. Generation stops at the same
            end-of-turn ids as ``TransformersPolicy`` (sent as ``stop_token_ids``); the text is
            the generated ids decoded with special tokens kept, as ``TransformersPolicy`` does,
            and tool calls are left to the environment's parser (``/completions`` parses none).
            Prefer it for training whenever the tokenizer is at hand.
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
        token_ids: bool = False,
        tokenizer: Any = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be positive")
        root = base_url.rstrip("/")
        self.chat_tokens = None
        if tokenizer is not None:
            from rlenv.rollout.chat_tokens import ChatTokens

            self.chat_tokens = ChatTokens(tokenizer)
        self.url = root + ("/completions" if tokenizer is not None else "/chat/completions")
        self.model = model
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.extra_body = dict(extra_body or {})
        self.token_ids = token_ids or tokenizer is not None
        self.supports_prefixes = tokenizer is not None
        self.name = f"openai:{model}"

    def generate(
        self,
        conversations: Sequence[Sequence[Message]],
        tools: Sequence[Sequence[dict[str, Any]]],
        params: SamplingParams,
        prefixes: Sequence[Sequence[int] | None] | None = None,
    ) -> list[Completion]:
        """One request per conversation, concurrently, completions in order. Request ``i`` is
        seeded with ``params.seeds[i]`` when given (the rollout engine gives each episode its
        own), else with ``row_seed(params.seed, i)``; no seed when ``params.seed`` is None.
        ``prefixes`` (with ``tokenizer=`` only): see :attr:`Policy.supports_prefixes
        <rlenv.rollout.Policy.supports_prefixes>`."""
        if params.seeds is not None and len(params.seeds) != len(conversations):
            raise ValueError(
                f"params.seeds has {len(params.seeds)} seeds for {len(conversations)} "
                "conversations: give one per conversation, or None"
            )
        if prefixes is not None and self.chat_tokens is None:
            raise ValueError("prefixes= needs a tokenizer (OpenAIPolicy(..., tokenizer=...))")
        seeds = params.seeds or [row_seed(params.seed, row) for row in range(len(conversations))]
        prefixes = prefixes or [None] * len(conversations)
        jobs = list(zip(conversations, tools, prefixes, seeds, strict=True))

        def complete(job: tuple) -> Completion:
            conversation, conversation_tools, prefix, seed = job
            if self.chat_tokens is not None:
                return self._complete_tokens(conversation, conversation_tools, prefix, params, seed)
            return self._complete_chat(conversation, conversation_tools, params, seed)

        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, max(1, len(jobs)))) as pool:
            return list(pool.map(complete, jobs))

    def _sampling_body(self, params: SamplingParams, seed: int | None) -> dict[str, Any]:
        """The sampling fields of one request (before ``extra_body``)."""
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if seed is not None:
            body["seed"] = seed
        if self.token_ids:
            body.update(_TRAINING_FIELDS)
        return body

    def _complete_chat(
        self,
        conversation: Sequence[Message],
        tools: Sequence[dict[str, Any]],
        params: SamplingParams,
        seed: int | None,
    ) -> Completion:
        body = self._sampling_body(params, seed)
        body["messages"] = to_openai_messages(conversation)
        if self.token_ids:
            body.update(
                logprobs=True,
                return_token_ids=True,  # vLLM and SGLang
                return_tokens_as_token_ids=True,  # vLLM: log-prob tokens as "token_id:N"
                return_prompt_token_ids=True,  # SGLang's chat endpoint
            )
        body.update(self.extra_body)
        if tools:
            body["tools"] = list(tools)
        response = self._post(body)
        choice = self._choice(response)
        message = choice.get("message")
        if not isinstance(message, dict):
            raise PolicyError(f"{self.url}: a choice without a message: {str(choice)[:300]}")
        text = message.get("content") or ""
        parsed = None
        if message.get("tool_calls"):
            parsed = {
                "role": "assistant",
                "content": message.get("content"),
                "tool_calls": message["tool_calls"],
            }
        completion = Completion(
            text=text,
            message=parsed,
            finish_reason=choice.get("finish_reason"),
            extra={"usage": response.get("usage", {})},
        )
        if self.token_ids:
            prompt = response.get("prompt_token_ids") or choice.get("prompt_token_ids")
            if not prompt:
                raise PolicyError(
                    f"{self.url} returned no prompt token ids (vLLM: top-level "
                    "prompt_token_ids with return_token_ids; SGLang: choices[0].prompt_token_ids "
                    "with return_prompt_token_ids). Use a server version that returns them, or "
                    "give OpenAIPolicy the tokenizer (tokenizer=...) to send token prompts to "
                    "/completions, or drop token_ids=True"
                )
            completion.prompt_token_ids = [int(i) for i in prompt]
            entries = (choice.get("logprobs") or {}).get("content") or []
            completion.completion_token_ids, completion.logprobs = self._generated(
                choice,
                [entry.get("token") for entry in entries],
                [entry.get("logprob") for entry in entries] if entries else None,
            )
        return completion

    def _complete_tokens(
        self,
        conversation: Sequence[Message],
        tools: Sequence[dict[str, Any]],
        prefix: Sequence[int] | None,
        params: SamplingParams,
        seed: int | None,
    ) -> Completion:
        chat = self.chat_tokens
        assert chat is not None
        if prefix is None:
            prompt = chat.prompt_ids(conversation, tools)
        else:
            prompt = chat.continued_prompt_ids(conversation, tools, prefix)
        body = self._sampling_body(params, seed)
        body.update(
            prompt=prompt,
            logprobs=0,  # the sampled token's log-prob only
            return_token_ids=True,  # vLLM and SGLang
            return_tokens_as_token_ids=True,  # vLLM: log-prob tokens as "token_id:N"
            stop_token_ids=list(chat.stop_ids),
            skip_special_tokens=False,
        )
        body.update(self.extra_body)
        response = self._post(body)
        choice = self._choice(response)
        echoed = choice.get("prompt_token_ids")
        if echoed is not None and list(echoed) != prompt:
            raise PolicyError(
                f"{self.url} generated from other prompt ids than were sent ({len(echoed)} ids "
                f"back for {len(prompt)} sent): is the server's tokenizer the policy's?"
            )
        logprobs = choice.get("logprobs") or {}
        ids, scores = self._generated(
            choice, logprobs.get("tokens") or [], logprobs.get("token_logprobs")
        )
        from rlenv.rollout.transformers import generated_completion

        return generated_completion(
            chat.tokenizer, chat.stop_ids, prompt, ids, scores,
            finish_reason=choice.get("finish_reason"), extra={"usage": response.get("usage", {})},
        )  # fmt: skip

    def _choice(self, response: dict[str, Any]) -> dict[str, Any]:
        try:
            choice = response["choices"][0]
        except (KeyError, IndexError, TypeError):
            raise PolicyError(
                f"{self.url}: a response without choices: {str(response)[:300]}"
            ) from None
        if not isinstance(choice, dict):
            raise PolicyError(f"{self.url}: a choice that is not an object: {str(choice)[:300]}")
        return choice

    def _generated(
        self, choice: dict[str, Any], tokens: Sequence[Any], scores: Sequence[Any] | None
    ) -> tuple[list[int], list[float]]:
        """The generated ids (``token_ids``, else vLLM's ``"token_id:N"`` log-prob tokens) and
        their log-probs, checked to be one per id."""
        ids = choice.get("token_ids")
        if ids is None and tokens and all(_token_id(t) is not None for t in tokens):
            ids = [_token_id(t) for t in tokens]
        if ids is None:
            raise PolicyError(
                f"{self.url} returned no completion token ids (choices[0].token_ids, asked for "
                "with return_token_ids; vLLM and SGLang return it). Use a server version that "
                "does, or drop token_ids=True"
            )
        if scores is None or any(not isinstance(s, (int, float)) for s in scores):
            raise PolicyError(
                f"{self.url} returned no log-prob for every generated token (choices[0].logprobs, "
                "asked for with logprobs); the server may not support them"
            )
        if len(scores) != len(ids):
            raise PolicyError(
                f"{self.url} returned {len(scores)} log-probs for {len(ids)} generated token ids"
            )
        return [int(i) for i in ids], [float(s) for s in scores]

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


def _token_id(token: Any) -> int | None:
    """The id in vLLM's ``"token_id:123"`` log-prob token (``return_tokens_as_token_ids``)."""
    if isinstance(token, str) and token.startswith("token_id:"):
        number = token[len("token_id:") :]
        if number.isdigit():
            return int(number)
    return None
