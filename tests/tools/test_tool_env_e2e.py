"""End to end: ``ToolEnv`` with each family's parser, on the family's real chat template, through
the real rollout engine (``rlenv.rollout.rollout`` with ``TransformersPolicy``) and a tiny
randomly initialised Llama over an in-process tokenizer.

The model is made to call the tool honestly: it is trained (seeded, CPU, a second or two) with
rlenv's own SFT pieces (``chat_example``: the template's rendering, the loss on the assistant's
tokens) on the one episode the env expects — the call in the family's layout, then the answer.
Decoding is then plain greedy ``generate`` in the rollout engine: nothing constrains it. The
episode must take two turns, run the tool, earn the reward, and be token-faithful (the second
prompt extends the first turn's exact ids; ``token_sequence`` does not raise).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from chat_families import FAMILIES, Family, tokenizer_for  # noqa: E402

import rlenv  # noqa: E402
from rlenv import Task, TaskList  # noqa: E402
from rlenv.rollout import SamplingParams, episodes, rollout  # noqa: E402
from rlenv.rollout.transformers import TransformersPolicy  # noqa: E402
from rlenv.tools import ToolEnv, tool  # noqa: E402
from rlenv.tools.parsers import (  # noqa: E402
    ParsedCall,
    get_parser,
    list_parsers,
)
from rlenv.train.sft import chat_example  # noqa: E402

ENV_ID = "rlenvtest/WeatherTools-v0"
ANSWER = "It is sunny in Paris."


@tool
def get_weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: The city.
    """
    return "sunny" if city == "Paris" else "rain"


class Weather(ToolEnv):
    """Ask for the weather; the answer must say what the tool said."""

    max_turns = 3

    def load_tools(self):
        return [get_weather]

    def load_tasks(self):
        return TaskList([Task(id="paris", prompt="Weather in Paris?", answer="sunny")])

    def grade(self, answer):
        return "sunny" in (answer or "") and bool(self.trace) and self.trace[0].ok


rlenv.register(ENV_ID, Weather)

# Templates that cannot take ToolEnv's messages as they are, and why.
REFUSED: dict[str, str] = {}
E2E = {
    "qwen3_coder", "qwen3_5", "qwen2_5", "gpt_oss", "glm45", "llama3_1", "kimi_k2_thinking",
    "gemma4", "deepseek_v31", "internlm2", "mistral_small_3_1", *REFUSED,
}  # fmt: skip


def e2e_families() -> list:
    params = []
    for family in FAMILIES:
        if family.template not in E2E:
            continue
        marks = []
        if family.parser not in list_parsers():
            marks.append(pytest.mark.skip(reason=f"parser {family.parser!r} not registered yet"))
        if family.template in REFUSED:
            marks.append(pytest.mark.xfail(strict=True, reason=REFUSED[family.template]))
        params.append(pytest.param(family, id=family.id, marks=marks))
    return params


def gold_episode(family: Family) -> list[dict]:
    """The conversation the env expects, as ToolEnv records it: the opening, the call (as the
    parser reads it back from the template's layout), the tool's result, the answer."""
    env = Weather(parser=family.parser)
    observation, info = env.reset(seed=0)
    written = get_parser(family.parser).render([ParsedCall("get_weather", {"city": "Paris"})])
    call = env.interpret({"role": "assistant", "content": written})  # as ToolEnv records it
    assert call.get("tool_calls"), f"{family.parser}: the rendered call was not read"
    tool_message = {
        "role": "tool",
        "tool_call_id": call["tool_calls"][0]["id"],
        "name": "get_weather",
        "content": "sunny",
    }
    return [*observation, call, tool_message, {"role": "assistant", "content": ANSWER}], env.tools


def trained_model(tokenizer, messages, tools, max_steps: int = 200):
    """A tiny Llama trained on the episode's assistant tokens only (rlenv's SFT mask), until its
    greedy choice is right at every one of them: greedy decoding from the same prompt ids (which
    the rollout engine feeds, properties (b) and (c)) then writes the episode."""
    example = chat_example(tokenizer, messages, tools)
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    model = transformers.LlamaForCausalLM(config)
    ids = torch.tensor([example.token_ids])
    targets = torch.tensor(example.token_ids[1:])
    mask = torch.tensor(example.mask[1:], dtype=torch.bool)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(max_steps):
        logits = model(input_ids=ids).logits[0, :-1]
        if bool((logits[mask].argmax(-1) == targets[mask]).all()):
            break
        loss = torch.nn.functional.cross_entropy(logits[mask], targets[mask])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.mark.parametrize("family", e2e_families())
def test_a_tool_episode_runs_end_to_end_token_faithful(family):
    tokenizer = tokenizer_for(family)
    messages, tools = gold_episode(family)
    model = trained_model(tokenizer, messages, tools)
    policy = TransformersPolicy(model, tokenizer, device="cpu", cast_bf16=False, name="tiny")
    (trajectory,) = rollout(
        policy,
        episodes(ENV_ID, n_tasks=1, parser=family.parser),
        params=SamplingParams(max_new_tokens=96, temperature=0.0),
        env_workers=1,
    )
    # two turns: the call, then the answer after the tool's result
    assert len(trajectory.turns) == 2, [turn.completion for turn in trajectory.turns]
    (call_message,) = [m for m in trajectory.messages if m.get("tool_calls")]
    assert call_message["tool_calls"][0]["function"]["name"] == "get_weather"
    assert not any("Tool call errors" in str(m.get("content")) for m in trajectory.messages)
    assert any(m["role"] == "tool" and m["content"] == "sunny" for m in trajectory.messages)
    assert trajectory.reward == 1.0 and trajectory.terminated
    # token-faithful: the second prompt extends the first turn's exact ids...
    first, second = trajectory.turns
    exact = first.prompt_token_ids + first.completion_token_ids
    assert second.prompt_token_ids[: len(exact)] == exact
    # ...and the episode is one token sequence (NotTokenFaithful not raised)
    sequence = trajectory.token_sequence()
    assert sequence.token_ids == second.prompt_token_ids + second.completion_token_ids
    assert sum(sequence.mask) == len(first.completion_token_ids) + len(second.completion_token_ids)
