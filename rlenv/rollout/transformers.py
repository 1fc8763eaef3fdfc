"""``TransformersPolicy``: a local Hugging Face causal LM as a policy (needs ``rlenv[train]``).

Batched generation with left padding and the KV cache; the chat template applied with
``tools=``; generation stops at the end-of-turn token. Each completion carries the exact prompt
token ids the model was fed, the generated token ids (end-of-turn token included) and their
log-probabilities at the sampling temperature — what a trainer needs to avoid re-tokenising.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlenv.chat import Message
from rlenv.errors import RLEnvError
from rlenv.rollout.policy import Completion, Policy, SamplingParams

__all__ = ["DECODERS", "DecoderNotSupported", "TemplateNotPrefixPreserving", "TransformersPolicy"]

DECODERS = ("loop", "hf", "hf-batch")
"""The values of ``TransformersPolicy(decoder=...)``."""

# End-of-turn markers of common chat templates; the ones in a tokenizer's vocabulary stop
# generation (besides its EOS token). Some end a turn (ChatML's <|im_end|>, Llama's <|eot_id|> and
# <|eom_id|>, Gemma's <end_of_turn> and <turn|>, MiniMax's [e~[), some end a tool call (GPT-OSS's
# <|call|>, Gemma 4's <|tool_response>), and some open the next message, as GLM's <|observation|>
# and <|user|> do (the model writes them, then the environment's message follows).
_END_OF_TURN = (
    "<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>", "<turn|>",
    "<|endoftext|>", "<|call|>", "<|return|>", "<|tool_response>", "<|observation|>", "<|user|>",
    "[e~[",
)  # fmt: skip


class TemplateNotPrefixPreserving(RLEnvError, ValueError):
    """The chat template re-renders earlier turns, so token-faithful multi-turn is impossible.

    The message names the template (the tokenizer's name), shows where the two renderings part,
    and says the ways out: a prefix-preserving template, or one model turn per episode."""


class DecoderNotSupported(RLEnvError, RuntimeError):
    """``decoder="hf-batch"`` cannot run here: the installed transformers has no continuous
    batching, the model's configuration is one it cannot serve, or a generation session failed.
    The message says which, and the way out: ``decoder="loop"``."""


class TransformersPolicy(Policy):
    """A ``transformers`` causal LM and its tokenizer as a :class:`~rlenv.rollout.Policy`.

    Args:
        model: A loaded ``AutoModelForCausalLM`` (moved to ``device``).
        tokenizer: Its tokenizer, with a chat template.
        device: ``"cuda"`` when available, else ``"cpu"``.
        batch_size: The most conversations per forward batch (longer batches are split).
        name: The policy's name in trajectories (default: the model's name).
        cast_bf16: Cast an fp32 model to bf16 on CUDA (a trainer keeps fp32 weights and
            generates under autocast instead).
        decoder: How completions are sampled. Each returns the exact prompt ids, the
            generated ids (stop token included), the finish reason and each token's log-prob
            under the full distribution at the sampling temperature; greedy outputs agree.

            ``"loop"`` (default): rlenv's own decoding loop — identical prompts (the samples of
            a GRPO group) are prefilled once, finished rows leave the batch, no per-step
            processor machinery; greedy output equals ``generate``'s (tested). The fastest
            on a CPU.

            ``"hf"``: ``model.generate``, for models whose cache or positions the loop does
            not handle.

            ``"hf-batch"``: transformers' continuous batching (``init_continuous_batching``,
            the engine behind ``model.generate_batch``): a paged KV cache sized for the call,
            finished sequences replaced by waiting ones at once, shared prompt blocks
            prefilled once, CUDA graphs and flash attention on a GPU. ``batch_size`` is the
            most sequences in one forward pass; the whole call is one session. Greedy output
            equals the loop's (tested on a tiny Llama and SmolLM2-135M, CPU). Needs a
            transformers with ``ContinuousBatchingConfig`` (5.24 tested) and an attention
            implementation it serves (``"sdpa"``, ``"eager"``, a flash one); others raise
            :class:`DecoderNotSupported` at construction. Costs: with ``top_p < 1`` its
            log-probs are the nucleus's, so the full distribution's are recomputed by one
            extra no-grad forward pass over prompt + completion. On a CPU it is slower than
            the loop (about 0.55x on SmolLM2 single-turn, 0.2x multi-turn): without flash
            attention, sdpa attends over the whole packed batch under a mask, every sequence's
            queries against every sequence's cached keys. Meant for GPUs (not run on one here).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        device: str | None = None,
        batch_size: int = 16,
        name: str | None = None,
        cast_bf16: bool = True,
        decoder: str = "loop",
    ) -> None:
        import torch

        self.torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if cast_bf16 and self.device.startswith("cuda") and model.dtype == torch.float32:
            model = model.to(torch.bfloat16)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.stop_ids = stop_token_ids(tokenizer)
        if decoder not in DECODERS:
            names = ", ".join(map(repr, DECODERS))
            raise ValueError(f"decoder must be one of {names}, got {decoder!r}")
        if decoder == "hf-batch":
            _check_continuous_batching(self.model)
        self.decoder = decoder
        self.batch_size = batch_size
        self.name = name or getattr(model.config, "_name_or_path", "") or type(model).__name__

    def prompt_ids(
        self, conversation: Sequence[Message], tools: Sequence[dict[str, Any]]
    ) -> list[int]:
        """The token ids the model is fed for the next assistant turn."""
        return render_prompt_ids(self.tokenizer, conversation, tools)

    supports_prefixes = True
    """The rollout engine passes each conversation's exact token ids so far (see
    :attr:`Policy.supports_prefixes <rlenv.rollout.Policy.supports_prefixes>` and below)."""

    def generate(
        self,
        conversations: Sequence[Sequence[Message]],
        tools: Sequence[Sequence[dict[str, Any]]],
        params: SamplingParams,
        prefixes: Sequence[Sequence[int] | None] | None = None,
    ) -> list[Completion]:
        """``prefixes[i]``, when given, are the exact ids of conversation i up to and including
        the model's last generated turn (its prompt + completion ids). The new prompt then
        *extends* them with only the tokens of the messages added since (token in, token out),
        instead of re-tokenising the transcript — see :meth:`continued_prompt_ids`."""
        torch = self.torch
        # A generator of the call's own, so that seeding leaves torch's global one alone; the
        # rollout engine gives every call its own seed (SamplingParams.seed).
        seed = params.seed
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        generator = torch.Generator(device=self.device)
        generator.manual_seed(seed)
        prefixes = prefixes or [None] * len(conversations)
        prompts = [
            self.prompt_ids(c, t) if prefix is None else self.continued_prompt_ids(c, t, prefix)
            for c, t, prefix in zip(conversations, tools, prefixes, strict=True)
        ]
        if self.decoder == "hf-batch":  # one session: its scheduler batches, not this loop
            return self._continuous(prompts, params, generator)
        completions: list[Completion] = []
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start : start + self.batch_size]
            if self.decoder == "loop":
                completions.extend(self._decode(chunk, params, generator))
            else:
                completions.extend(self._batch(chunk, params, generator))
        return completions

    def continued_prompt_ids(
        self,
        conversation: Sequence[Message],
        tools: Sequence[dict[str, Any]],
        prefix: Sequence[int],
    ) -> list[int]:
        """The exact ids so far plus the tokens of the messages after the last assistant turn.

        Those new tokens come from the text the chat template adds after the model's last turn,
        found by rendering the conversation with and without the new messages. That needs a
        template that renders earlier turns the same way whatever follows (prefix-preserving);
        one that does not raises :class:`TemplateNotPrefixPreserving` rather than silently
        training on tokens the model never saw.
        """
        return extend_prompt_ids(self.tokenizer, self.stop_ids, conversation, tools, prefix)

    def _decode(
        self, prompts: list[list[int]], params: SamplingParams, generator: Any
    ) -> list[Completion]:
        """Sample completions with the key/value cache, one token per step for every row."""
        torch = self.torch
        device = self.device
        # identical prompts (a GRPO group's samples) are prefilled once
        distinct: dict[tuple[int, ...], int] = {}
        source = [distinct.setdefault(tuple(p), len(distinct)) for p in prompts]
        unique = list(distinct)
        width = max(len(p) for p in unique)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(unique), width), pad, dtype=torch.long, device=device)
        mask = torch.zeros(len(unique), width, dtype=torch.long, device=device)
        for row, prompt in enumerate(unique):
            ids[row, width - len(prompt) :] = torch.tensor(prompt, device=device)
            mask[row, width - len(prompt) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache_name = cache_argument(self.model)
        sample = params.temperature > 0
        stops = torch.tensor(self.stop_ids, device=device)
        with torch.no_grad():
            out = self.model(
                input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                logits_to_keep=1,
            )  # fmt: skip
            cache = getattr(out, "cache", None) or out.past_key_values
            select = torch.tensor(source, device=device)
            cache.batch_select_indices(select)
            logits = out.logits[select, -1].float()
            mask = mask[select]
            next_position = positions[select, -1] + 1
            active = torch.arange(len(prompts), device=device)  # original row of each live row
            tokens: list[list[int]] = [[] for _ in prompts]
            scores: list[list[float]] = [[] for _ in prompts]
            for step in range(params.max_new_tokens):
                scaled = logits / params.temperature if sample else logits
                logprobs = torch.log_softmax(scaled, dim=-1)
                chosen = _sample(logprobs, params.top_p, generator) if sample else logits.argmax(-1)
                picked = logprobs.gather(-1, chosen.unsqueeze(-1)).squeeze(-1)
                for row, token, score in zip(
                    active.tolist(), chosen.tolist(), picked.tolist(), strict=True
                ):
                    tokens[row].append(token)
                    scores[row].append(score)
                going = ~torch.isin(chosen, stops)
                if step == params.max_new_tokens - 1 or not bool(going.any()):
                    break
                if not bool(going.all()):  # finished rows leave the batch
                    keep = going.nonzero().squeeze(-1)
                    cache.batch_select_indices(keep)
                    active, chosen = active[keep], chosen[keep]
                    mask, next_position = mask[keep], next_position[keep]
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)
                out = self.model(
                    input_ids=chosen.unsqueeze(-1), attention_mask=mask,
                    position_ids=next_position.unsqueeze(-1), use_cache=True,
                    **{cache_name: cache},
                )  # fmt: skip
                cache = getattr(out, "cache", None) or out.past_key_values
                logits = out.logits[:, -1].float()
                next_position = next_position + 1
        return [
            self._completion(prompt, kept, logprobs)
            for prompt, kept, logprobs in zip(prompts, tokens, scores, strict=True)
        ]

    def _completion(self, prompt: list[int], kept: list[int], logprobs: list[float]) -> Completion:
        return generated_completion(self.tokenizer, self.stop_ids, prompt, kept, logprobs)

    def _batch(
        self, prompts: list[list[int]], params: SamplingParams, generator: Any
    ) -> list[Completion]:
        """Sample completions with ``model.generate``, which draws from torch's global
        generator: it runs seeded from ``generator`` inside a fork of the global state."""
        torch = self.torch
        pad = self.tokenizer.pad_token_id
        width = max(len(p) for p in prompts)
        input_ids = torch.tensor(
            [[pad] * (width - len(p)) + p for p in prompts], device=self.device
        )
        attention = torch.tensor(
            [[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device
        )
        sample = params.temperature > 0
        forked = [self.device] if self.device.startswith("cuda") else []
        with torch.no_grad(), torch.random.fork_rng(devices=forked):
            draw = torch.randint(0, 2**62, (1,), generator=generator, device=generator.device)
            torch.manual_seed(int(draw.item()))
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                max_new_tokens=params.max_new_tokens,
                do_sample=sample,
                temperature=params.temperature if sample else None,
                top_p=params.top_p if sample else None,
                top_k=None,
                eos_token_id=self.stop_ids,
                pad_token_id=pad,
                return_dict_in_generate=True,
                output_logits=True,
            )
        generated = output.sequences[:, width:]
        # Log-probabilities of the sampled tokens under the full distribution at the sampling
        # temperature, from the raw logits: ``output.scores`` would already include the
        # temperature and top-p filtering. This is what a trainer recomputes (logits / T).
        scores = torch.stack(output.logits, dim=1).float()
        if sample:
            scores = scores / params.temperature
        logprobs = torch.log_softmax(scores, dim=-1).gather(-1, generated.unsqueeze(-1)).squeeze(-1)
        completions = []
        for row, prompt in enumerate(prompts):
            ids = generated[row].tolist()
            end = next((i + 1 for i, token in enumerate(ids) if token in self.stop_ids), None)
            kept = ids[:end] if end is not None else ids
            text_ids = kept[:-1] if end is not None else kept
            completions.append(
                Completion(
                    text=self._text(text_ids),
                    prompt_token_ids=list(prompt),
                    completion_token_ids=kept,
                    logprobs=logprobs[row, : len(kept)].tolist(),
                    finish_reason="stop" if end is not None else "length",
                )
            )
        return completions

    def _continuous(
        self, prompts: list[list[int]], params: SamplingParams, generator: Any
    ) -> list[Completion]:
        """Sample completions with transformers' continuous batching (``decoder="hf-batch"``).

        It samples from torch's global generator, seeded from ``generator`` inside a fork of
        the global state (the session seeds it with ``ContinuousBatchingConfig.seed``). Its
        log-probs are ``log(softmax(processed logits))``: the full distribution's at the
        temperature when nothing but the temperature processes them, the nucleus's under
        ``top_p < 1`` — then a forward pass recomputes them (:meth:`_forward_logprobs`)."""
        from transformers import ContinuousBatchingConfig, GenerationConfig

        torch = self.torch
        if not prompts:
            return []
        sample = params.temperature > 0
        nucleus = sample and params.top_p < 1.0
        generation = GenerationConfig(
            max_new_tokens=params.max_new_tokens,
            do_sample=sample,
            temperature=params.temperature if sample else None,
            top_p=params.top_p if nucleus else None,
            top_k=None,
            eos_token_id=list(self.stop_ids),
            pad_token_id=self.tokenizer.pad_token_id,
        )
        draw = torch.randint(0, 2**62, (1,), generator=generator, device=generator.device)
        lengths = [len(prompt) + params.max_new_tokens for prompt in prompts]
        page = ContinuousBatchingConfig.page_size  # the class default, 256 tokens
        config = ContinuousBatchingConfig(
            return_logprobs=not nucleus,
            seed=int(draw.item()),
            # Sized for this call, not from free memory (on a CPU the default takes 60% of
            # the RAM): every sequence's blocks fit at once, so none is ever evicted and
            # recomputed, and the schedule - hence the sampling - does not depend on memory.
            num_blocks=sum(-(-length // page) for length in lengths) + 1,
            max_batch_tokens=max(min(sum(map(len, prompts)), _MAX_BATCH_TOKENS), len(prompts)),
            max_requests_per_batch=min(self.batch_size, len(prompts)),
            safety_margin=0.0,
        )
        forked = [self.device] if self.device.startswith("cuda") else []
        with torch.no_grad(), torch.random.fork_rng(devices=forked):
            outputs = _run_continuous_batching(self.model, prompts, generation, config)
        generated = [list(output.generated_tokens) for output in outputs]
        if nucleus:
            logprobs = self._forward_logprobs(prompts, generated, params.temperature)
        else:
            logprobs = [list(output.logprobs) for output in outputs]
        return [
            self._completion(prompt, kept, scores)
            for prompt, kept, scores in zip(prompts, generated, logprobs, strict=True)
        ]

    def _forward_logprobs(
        self, prompts: list[list[int]], completions: list[list[int]], temperature: float
    ) -> list[list[float]]:
        """``log_softmax(logits / temperature)`` of each completion token, from one no-grad
        forward pass of prompt + completion per batch of ``batch_size`` sequences (left padded,
        only the completions' logits computed)."""
        torch = self.torch
        pad = self.tokenizer.pad_token_id
        scores: list[list[float]] = []
        for start in range(0, len(prompts), self.batch_size):
            rows = list(zip(prompts, completions, strict=True))[start : start + self.batch_size]
            sequences = [prompt + completion for prompt, completion in rows]
            width = max(map(len, sequences))
            keep = max(len(completion) for _, completion in rows) + 1
            padded = [[pad] * (width - len(s)) + s for s in sequences]
            ids = torch.tensor(padded, device=self.device)
            mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in sequences])
            mask = mask.to(self.device)
            with torch.no_grad():
                logits = self.model(
                    input_ids=ids, attention_mask=mask,
                    position_ids=(mask.cumsum(-1) - 1).clamp(min=0), logits_to_keep=keep,
                ).logits.float()  # fmt: skip
            logprobs = torch.log_softmax(logits / temperature, dim=-1)
            for row, (_, completion) in enumerate(rows):
                # the logits predicting the completion sit just before its tokens, at the end
                predicting = logprobs[row, keep - len(completion) - 1 : keep - 1]
                chosen = torch.tensor(completion, device=self.device).unsqueeze(-1)
                scores.append(predicting.gather(-1, chosen).squeeze(-1).tolist())
        return scores

    def _text(self, ids: list[int]) -> str:
        """The completion's text, special tokens kept: the markup of tool calls is special tokens
        in many families (GPT-OSS's ``<|channel|>``, Mistral's ``[TOOL_CALLS]``, Kimi's
        ``<|tool_call_begin|>``), and the parser must see it (engines decode with
        ``skip_special_tokens=False`` for these formats). The stop token is not in ``ids``."""
        return self.tokenizer.decode(ids, skip_special_tokens=False)


# The most prompt tokens of one continuous-batching forward pass; longer prefills are split.
# Also one side of the attention mask that sdpa and eager need, [tokens, cache + tokens].
_MAX_BATCH_TOKENS = 8192

# The fields of ContinuousBatchingConfig the hf-batch decoder sets.
_CONTINUOUS_FIELDS = (
    "return_logprobs", "seed", "num_blocks", "max_batch_tokens", "max_requests_per_batch",
    "safety_margin", "page_size",
)  # fmt: skip


def _check_continuous_batching(model: Any) -> None:
    """Raise :class:`DecoderNotSupported` unless transformers' continuous batching can serve
    ``model``: the API the hf-batch decoder calls, an attention implementation its paged cache
    works with, and layers of the attention types its cache allocates."""
    import dataclasses

    import transformers

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config_class = getattr(transformers, "ContinuousBatchingConfig", None)
    fields = {f.name for f in dataclasses.fields(config_class)} if config_class else set()
    missing = [name for name in _CONTINUOUS_FIELDS if name not in fields]
    if not callable(getattr(base, "init_continuous_batching", None)) or missing:
        raise DecoderNotSupported(
            f"decoder='hf-batch' needs transformers' continuous batching "
            f"(model.init_continuous_batching and a ContinuousBatchingConfig with "
            f"{', '.join(_CONTINUOUS_FIELDS)}); transformers {transformers.__version__} "
            f"lacks {', '.join(missing) or 'init_continuous_batching'}. Upgrade transformers "
            "(5.24 is tested), or use decoder='loop'"
        )
    name = type(base).__name__
    attention = getattr(base.config, "_attn_implementation", None) or "eager"
    if attention not in ("eager", "paged|eager", "sdpa") and "flash" not in attention:
        raise DecoderNotSupported(
            f"decoder='hf-batch' cannot serve {name} with attn_implementation={attention!r}: "
            "transformers' paged cache works with 'sdpa', 'eager' (run as 'paged|eager') or a "
            "flash attention implementation. Load the model with attn_implementation='sdpa' "
            "(or call model.set_attn_implementation('sdpa')), or use decoder='loop'"
        )
    from transformers.generation.continuous_batching.cache import group_layers_by_attn_type

    try:
        group_layers_by_attn_type(base.config.get_text_config())
    except ValueError as error:
        raise DecoderNotSupported(
            f"decoder='hf-batch' cannot serve {name}: transformers' paged cache only holds "
            f"full and sliding-window attention layers ({error}). Use decoder='loop'"
        ) from error


def _run_continuous_batching(
    model: Any, prompts: list[list[int]], generation: Any, config: Any
) -> list[Any]:
    """One continuous-batching session: every prompt queued *before* the generation thread
    starts, then one ``GenerationOutput`` per prompt, in order.

    This is ``model.generate_batch`` (transformers 5.24,
    ``generation/continuous_batching/continuous_api.py``) with one change: ``generate_batch``
    starts the thread first and queues the prompts while it runs, so which prompts share the
    first forward passes depends on thread timing, and with it the sampled tokens. Queued
    first, the schedule depends only on the inputs and the configuration, and a seed
    reproduces the samples. Any failure raises :class:`DecoderNotSupported`."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        from transformers.generation.continuous_batching.utils import WorkloadHints
    except ImportError:  # hints only tune defaults
        hints = None
    else:
        hints = WorkloadHints(
            max_prompt_length=max(map(len, prompts)),
            max_generated_length=generation.max_new_tokens,
            num_requests=len(prompts),
        )
    name = type(base).__name__
    attention = base.config._attn_implementation  # the session switches it (eager: paged|eager)
    try:
        manager = base.init_continuous_batching(
            generation_config=generation, continuous_batching_config=config, workload_hints=hints
        )
    except (ValueError, NotImplementedError, AttributeError) as error:
        raise DecoderNotSupported(
            f"transformers' continuous batching cannot serve {name}: {error}. Use decoder='loop'"
        ) from error
    results: dict[str, Any] = {}
    try:
        manager.warmup()  # captures CUDA graphs where they are used; nothing on a CPU
        ids = manager.add_requests(inputs=prompts, max_new_tokens=generation.max_new_tokens)
        manager.start()
        while len(results) < len(ids):
            output = manager.get_result(timeout=1)
            if output is not None and output.is_finished():
                results[output.request_id] = output
            elif output is None and not manager.is_running():
                break
    finally:
        manager.stop(block=True)
        manager.destroy()
        if base.config._attn_implementation != attention:  # stop() skips this when not started
            base.set_attn_implementation(attention)
    failed = [results.get(i) for i in ids if i not in results or results[i].error is not None]
    if failed:
        reason = next((output.error for output in failed if output is not None), None)
        raise DecoderNotSupported(
            f"transformers' continuous batching failed on {name} for {len(failed)} of "
            f"{len(ids)} prompts ({reason or 'the generation thread stopped'}). Use "
            "decoder='loop'"
        )
    return [results[i] for i in ids]


def generated_completion(
    tokenizer: Any,
    stop_ids: Sequence[int],
    prompt: Sequence[int],
    ids: list[int],
    logprobs: list[float] | None,
    *,
    finish_reason: str | None = "length",
    extra: dict[str, Any] | None = None,
) -> Completion:
    """The :class:`Completion` of generated ``ids`` after ``prompt``, the rule every backend
    follows: ids that end at a stop id finish with "stop", the stop id kept in the ids (a
    trainer learns to emit it) but not in the text; others finish with ``finish_reason`` (the
    length limit unless the engine said otherwise). The text keeps special tokens: the markup of
    tool calls is special tokens in many families (GPT-OSS's ``<|channel|>``, Mistral's
    ``[TOOL_CALLS]``), and the parser must see it."""
    stopped = bool(ids) and ids[-1] in stop_ids
    return Completion(
        text=tokenizer.decode(ids[:-1] if stopped else ids, skip_special_tokens=False),
        prompt_token_ids=list(prompt),
        completion_token_ids=ids,
        logprobs=logprobs,
        finish_reason="stop" if stopped else finish_reason,
        extra=dict(extra or {}),
    )


def render_prompt_ids(
    tokenizer: Any, conversation: Sequence[Message], tools: Sequence[dict[str, Any]] = ()
) -> list[int]:
    """The ids of ``conversation`` rendered by the chat template with the generation prompt."""
    text = tokenizer.apply_chat_template(
        list(conversation), tools=list(tools) or None, add_generation_prompt=True, tokenize=False
    )
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def continuation_text(
    tokenizer: Any,
    conversation: Sequence[Message],
    tools: Sequence[dict[str, Any]],
    stopped: bool,
) -> str:
    """The text the chat template adds after the model's last turn: the end of that turn
    (unless the model ``stopped`` with its end-of-turn token, which it then generated itself),
    the messages after it, and the next generation prompt.

    Found by rendering the conversation with and without the new messages; a template that
    renders earlier turns differently once more follow raises
    :class:`TemplateNotPrefixPreserving`. A template whose assistant turn has no end marker and
    whose model stops on the token that opens the next message (GLM's ``<|observation|>``) is
    handled too: that token, when the model generated it, is not added again.
    """
    last = max(i for i, message in enumerate(conversation) if message["role"] == "assistant")
    render = tokenizer.apply_chat_template
    tools_arg = list(tools) or None
    before = render(list(conversation[: last + 1]), tools=tools_arg, tokenize=False)
    after = render(list(conversation), tools=tools_arg, add_generation_prompt=True, tokenize=False)
    if not after.startswith(before):
        raise TemplateNotPrefixPreserving(_not_prefix_message(tokenizer, before, after))
    # The template's newline after an end-of-turn marker belongs to the environment's text; the
    # marker itself is the model's when it stopped on it, else (cut at the length limit) new.
    markers = end_of_turn_markers(tokenizer)
    ending = before.rstrip()
    found = [marker for marker in markers if ending.endswith(marker)]
    if found:
        marker = max(found, key=len)
        position = len(ending) - len(marker)
        return after[position + len(marker) if stopped else position :]
    added = after[len(before) :]
    opening = [marker for marker in markers if added.startswith(marker)]
    if stopped and opening:  # the model wrote the token that opens the next message
        return added[len(max(opening, key=len)) :]
    return added


def _not_prefix_message(tokenizer: Any, before: str, after: str) -> str:
    """What :class:`TemplateNotPrefixPreserving` says: the template, where the renderings part,
    why it matters, and what to do."""
    start = next(
        (i for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b),
        min(len(before), len(after)),
    )
    name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
    return (
        f"the chat template of {name!r} renders earlier turns differently once more messages "
        f"follow, so a multi-turn prompt cannot extend the tokens the model generated. At "
        f"character {start}, the conversation so far reads {before[start : start + 60]!r}, but "
        f"once the new messages follow it reads {after[start : start + 60]!r}. (Templates that "
        "drop the reasoning of earlier turns, such as Qwen3's <think> blocks, do this.) Ways out: "
        "set tokenizer.chat_template to a prefix-preserving template (one that renders every "
        "assistant turn the same wherever it stands, e.g. keeping its reasoning; TRL ships such "
        "'training' templates), or run single-turn episodes (max_turns=1)"
    )


def extend_prompt_ids(
    tokenizer: Any,
    stop_ids: Sequence[int],
    conversation: Sequence[Message],
    tools: Sequence[dict[str, Any]],
    prefix: Sequence[int],
) -> list[int]:
    """``prefix`` (the exact ids up to and including the model's last turn) extended with the
    tokens of :func:`continuation_text` — token in, token out."""
    stopped = bool(prefix) and prefix[-1] in stop_ids
    suffix = continuation_text(tokenizer, conversation, tools, stopped)
    return list(prefix) + tokenizer(suffix, add_special_tokens=False)["input_ids"]


def stop_token_ids(tokenizer: Any) -> list[int]:
    """EOS and the chat template's end-of-turn markers that are in the vocabulary."""
    vocabulary = tokenizer.get_vocab()
    markers = [t for t in _END_OF_TURN if t in vocabulary]
    if "<|channel|>" in vocabulary:  # Harmony: <|end|> closes one message of a turn, not the turn
        markers = [t for t in markers if t != "<|end|>"]
    stops = {tokenizer.eos_token_id} | {vocabulary[t] for t in markers}
    return sorted(stop for stop in stops if stop is not None)


def end_of_turn_markers(tokenizer: Any) -> list[str]:
    """What ends a model turn in the rendered conversation: the text of each stop token
    (:func:`stop_token_ids`), and the known markers that are not in the vocabulary (a tokenizer
    that splits them still finds them in the text)."""
    vocabulary = tokenizer.get_vocab()
    tokens = tokenizer.convert_ids_to_tokens(stop_token_ids(tokenizer))
    absent = {marker for marker in _END_OF_TURN if marker not in vocabulary}
    return sorted({token for token in tokens if token} | absent)


def _sample(logprobs: Any, top_p: float, generator: Any) -> Any:
    """One token per row from ``exp(logprobs)``, restricted to the top-p nucleus."""
    import torch

    probabilities = logprobs.exp()
    if top_p < 1.0:
        ordered, order = probabilities.sort(dim=-1, descending=True)
        outside = ordered.cumsum(-1) - ordered > top_p  # keeps at least the most likely token
        ordered = ordered.masked_fill(outside, 0.0)
        probabilities = torch.zeros_like(probabilities).scatter(-1, order, ordered)
    return torch.multinomial(probabilities, 1, generator=generator).squeeze(-1)


def cache_argument(model: Any) -> str:
    """``cache=`` in recent ``transformers``, ``past_key_values=`` before."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        parameters = inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in parameters else "past_key_values"
