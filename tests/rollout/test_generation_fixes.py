"""Issue 18's rollout-side fixes: a seed per generate call, ``max_episode_tokens``, and
``top_p < 1`` refused by the GRPO trainer (whose loss uses full-distribution log-probs)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from rlenv import GeneratedTasks, Task, TextEnv, Turn, Verdict, register, unregister
from rlenv.rollout import Completion, Policy, SamplingParams, episodes, rollout
from rlenv.rollout.policy import call_seed


class Chatter(TextEnv):
    """Multi-turn: replies 'Go on.' to anything until ``max_turns``; a numbered prompt per
    task, so a policy can tell episodes apart."""

    max_turns = 5

    def load_tasks(self) -> GeneratedTasks:
        return GeneratedTasks(lambda rng: Task(prompt=f"Talk {rng.randint(0, 10**9)}", answer=""))

    def respond(self, message) -> Turn:
        return Turn.reply("Go on.", verdict=Verdict(reward=0.0))


@pytest.fixture(scope="module", autouse=True)
def chatter():
    register("tests/Chatter-v0", Chatter)
    yield
    unregister("tests/Chatter-v0")


class TokenPolicy(Policy):
    """Wants ``wants[k]`` tokens per turn for the k-th episode it sees (by opening prompt); gets
    ``min(want, max_new_tokens)``, cut ('length') when that is less. Records every call."""

    name = "tokens"

    def __init__(
        self,
        wants: Sequence[int],
        answer: Callable[[Sequence[dict]], str] = lambda conversation: "x",
        token_ids: bool = True,
    ) -> None:
        self.wants = list(wants)
        self.answer = answer
        self.token_ids = token_ids
        self.seen: dict[str, int] = {}
        self.calls: list[dict[str, Any]] = []

    def generate(self, conversations, tools, params) -> list[Completion]:
        self.calls.append(
            {"size": len(conversations), "limit": params.max_new_tokens, "seed": params.seed}
        )
        completions = []
        for conversation in conversations:
            episode = self.seen.setdefault(conversation[0]["content"], len(self.seen))
            want = self.wants[episode % len(self.wants)]
            got = min(want, params.max_new_tokens)
            completions.append(
                Completion(
                    text=self.answer(conversation),
                    completion_token_ids=[5] * got if self.token_ids else None,
                    extra={} if self.token_ids else {"usage": {"completion_tokens": got}},
                    finish_reason="stop" if want <= params.max_new_tokens else "length",
                )
            )
        return completions


def _turn_lengths(trajectory) -> list[int]:
    return [len(turn.completion_token_ids) for turn in trajectory.turns]


# ------------------------------------------------------------------ 1. a seed per generate call


def test_each_generate_call_of_a_rollout_gets_its_own_seed_and_the_same_seed_repeats_them():
    def seeds(seed):
        policy = TokenPolicy([1])
        rollout(
            policy,
            episodes("tests/Chatter-v0", n_tasks=6),
            params=SamplingParams(seed=seed),
            max_batch_size=4,  # two waves, and five turns each
        )
        return [call["seed"] for call in policy.calls]

    first = seeds(7)
    assert len(first) >= 5 and first[0] == 7  # a one-call rollout samples as generate(seed=7)
    assert len(set(first)) == len(first)  # no two calls share their noise
    assert all(0 <= seed < 2**31 for seed in first)
    assert seeds(7) == first  # ...and the same seed repeats the whole sequence
    assert set(seeds(8)).isdisjoint(first)
    assert seeds(None) == [None] * len(first)
    assert call_seed(7, 3) == call_seed(7, 3) != call_seed(8, 3)


@pytest.fixture(scope="module")
def tiny():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from rlenv.rollout.transformers import TransformersPolicy
    from rlenv.testing import tiny_chat_model

    model, tokenizer = tiny_chat_model(0)
    return TransformersPolicy(model, tokenizer, device="cpu", name="tiny")


@pytest.fixture(scope="module")
def uniform():
    """A tiny model whose next-token distribution is uniform whatever the prompt (its final norm
    is zero, so every logit is 0): what it samples depends only on the sampling noise."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from rlenv.rollout.transformers import TransformersPolicy
    from rlenv.testing import tiny_chat_model

    model, tokenizer = tiny_chat_model(0)
    with torch.no_grad():
        model.model.norm.weight.zero_()
    return TransformersPolicy(model, tokenizer, device="cpu", name="uniform")


def test_the_turns_of_an_episode_do_not_repeat_their_sampling_noise(uniform):
    """Same distribution every turn: with one seed re-used per call (the old behaviour) every
    turn drew the same tokens."""
    (trajectory,) = rollout(
        uniform,
        episodes("tests/Chatter-v0", n_tasks=1, max_turns=3),
        params=SamplingParams(max_new_tokens=6, temperature=1.0, seed=0),
    )
    turns = [turn.completion_token_ids for turn in trajectory.turns]
    assert len(turns) == 3
    assert turns[0] != turns[1] and turns[1] != turns[2] and turns[0] != turns[2]


def test_the_same_seed_reproduces_a_whole_multi_wave_rollout_and_another_seed_does_not(tiny):
    def run(seed):
        trajectories = rollout(
            tiny,
            episodes("tests/Chatter-v0", n_tasks=3, group_size=2, max_turns=2),
            params=SamplingParams(max_new_tokens=5, temperature=1.0, seed=seed),
            max_batch_size=4,
        )
        return [[turn.completion_token_ids for turn in t.turns] for t in trajectories]

    first = run(11)
    assert run(11) == first
    assert run(12) != first
    # the samples of a group (same prompt, same call) differ too
    assert first[0] != first[1]


@pytest.mark.parametrize("decoder", ["loop", "hf"])
def test_a_seeded_generate_leaves_torch_global_generator_alone(tiny, decoder):
    """Seeding re-seeded torch's global generator before: a trainer's own randomness (dropout,
    data order) was reset by every generation."""
    torch = pytest.importorskip("torch")
    from rlenv.rollout.transformers import TransformersPolicy

    policy = TransformersPolicy(tiny.model, tiny.tokenizer, device="cpu", decoder=decoder)
    conversation = [{"role": "user", "content": "Say a or b."}]
    params = SamplingParams(max_new_tokens=4, temperature=1.0, seed=3)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = policy.generate([conversation] * 2, [[]] * 2, params)
    assert torch.equal(torch.get_rng_state(), before)
    again = policy.generate([conversation] * 2, [[]] * 2, params)
    assert [c.completion_token_ids for c in first] == [c.completion_token_ids for c in again]


# ------------------------------------------------------------------ 2. max_episode_tokens


def test_an_episode_that_spends_its_token_budget_mid_turn_is_truncated():
    policy = TokenPolicy([7])  # wants 7 tokens a turn
    (trajectory,) = rollout(
        policy,
        episodes("tests/Chatter-v0", n_tasks=1),
        params=SamplingParams(max_new_tokens=5, max_episode_tokens=12),
    )
    assert [call["limit"] for call in policy.calls] == [5, 5, 2]  # min(per turn, what is left)
    assert _turn_lengths(trajectory) == [5, 5, 2]
    assert [turn.finish_reason for turn in trajectory.turns] == ["length"] * 3
    assert trajectory.truncated and not trajectory.terminated
    assert trajectory.stop_reason == "max_episode_tokens"
    assert trajectory.hit_token_limit


def test_a_budget_spent_exactly_by_a_finished_turn_still_ends_the_episode():
    policy = TokenPolicy([3])
    (trajectory,) = rollout(
        policy,
        episodes("tests/Chatter-v0", n_tasks=1),
        params=SamplingParams(max_new_tokens=5, max_episode_tokens=6),
    )
    assert _turn_lengths(trajectory) == [3, 3]
    assert [turn.finish_reason for turn in trajectory.turns] == ["stop", "stop"]
    assert trajectory.stop_reason == "max_episode_tokens" and trajectory.truncated
    assert trajectory.hit_token_limit  # no turn was cut, but the episode was


def test_episodes_with_different_budgets_left_go_in_separate_calls():
    policy = TokenPolicy([3, 7])  # the first episode wants 3 tokens a turn, the second 7
    short, long = rollout(
        policy,
        episodes("tests/Chatter-v0", n_tasks=2),
        params=SamplingParams(max_new_tokens=5, max_episode_tokens=12, seed=1),
    )
    assert _turn_lengths(short) == [3, 3, 3, 3]  # 12: the fourth turn spends the budget
    assert _turn_lengths(long) == [5, 5, 2]
    calls = [(call["size"], call["limit"]) for call in policy.calls]
    assert calls == [(2, 5), (2, 5), (1, 5), (1, 2), (1, 3)]
    assert len({call["seed"] for call in policy.calls}) == len(policy.calls)
    assert short.stop_reason == long.stop_reason == "max_episode_tokens"


def test_without_a_budget_episodes_end_as_the_environment_says():
    policy = TokenPolicy([7])
    (trajectory,) = rollout(
        policy, episodes("tests/Chatter-v0", n_tasks=1), params=SamplingParams(max_new_tokens=5)
    )
    assert _turn_lengths(trajectory) == [5] * 5  # max_turns
    assert trajectory.stop_reason == "truncated" and trajectory.truncated


def test_an_episode_the_environment_ends_with_the_last_token_is_terminated_not_truncated():
    def count_down(conversation):  # 3, 2, 1: the environment ends the episode after "1"
        return str(3 - sum(m["role"] == "assistant" for m in conversation))

    policy = TokenPolicy([4], answer=count_down)
    (trajectory,) = rollout(
        policy,
        episodes("rlenvtest/Countdown-v0", n_tasks=1),
        params=SamplingParams(max_new_tokens=4, max_episode_tokens=12),
    )
    assert _turn_lengths(trajectory) == [4, 4, 4]
    assert trajectory.terminated and not trajectory.truncated
    assert trajectory.stop_reason == "terminated" and trajectory.reward == 1.0


def test_the_budget_counts_a_server_s_usage_when_there_are_no_token_ids():
    policy = TokenPolicy([7], token_ids=False)
    (trajectory,) = rollout(
        policy,
        episodes("tests/Chatter-v0", n_tasks=1),
        params=SamplingParams(max_new_tokens=5, max_episode_tokens=12),
    )
    assert [call["limit"] for call in policy.calls] == [5, 5, 2]
    assert trajectory.stop_reason == "max_episode_tokens"


def test_a_budget_with_a_policy_that_reports_no_token_counts_is_refused():
    from rlenv.rollout import ScriptedPolicy

    with pytest.raises(ValueError, match="max_episode_tokens needs each turn's token count"):
        rollout(
            ScriptedPolicy(answers=["x"]),
            episodes("tests/Chatter-v0", n_tasks=1),
            params=SamplingParams(max_episode_tokens=10),
        )
    with pytest.raises(ValueError, match="max_episode_tokens must be positive"):
        rollout(
            TokenPolicy([1]),
            episodes("tests/Chatter-v0", n_tasks=1),
            params=SamplingParams(max_episode_tokens=0),
        )


def test_a_local_model_s_episode_is_cut_at_the_budget_with_the_right_token_counts(uniform):
    (trajectory,) = rollout(
        uniform,
        episodes("tests/Chatter-v0", n_tasks=1),
        params=SamplingParams(max_new_tokens=6, max_episode_tokens=10, seed=0),
    )
    assert _turn_lengths(trajectory) == [6, 4]
    assert [turn.finish_reason for turn in trajectory.turns] == ["length", "length"]
    assert trajectory.stop_reason == "max_episode_tokens" and trajectory.truncated
    sequence = trajectory.token_sequence()
    assert sum(sequence.mask) == 10  # the model generated exactly the budget


# ------------------------------------------------------------------ the GRPO trainer's side


def _grpo_config(tmp_path, **overrides):
    pytest.importorskip("torch")
    from rlenv.train import GRPOConfig

    settings = dict(
        env_id="tests/Chatter-v0", out=str(tmp_path / "run"), steps=1, prompts_per_step=1,
        group_size=2, max_new_tokens=4, warmup_steps=0, eval_tasks=0, progress=False,
        plots=False, precision="fp32", device="cpu",
    )  # fmt: skip
    settings.update(overrides)
    return GRPOConfig(**settings)


def test_grpo_refuses_top_p_below_one_and_says_what_to_do(tmp_path):
    with pytest.raises(ValueError, match=r"top_p=0\.9.*Set top_p=1\.0"):
        _grpo_config(tmp_path, top_p=0.9)
    assert _grpo_config(tmp_path, top_p=1.0).top_p == 1.0


def test_recorded_logprobs_are_of_the_full_distribution_even_under_top_p(tiny):
    """Why the trainer refuses top_p < 1: the recorded (and recomputed) log-probs are not
    renormalised over the nucleus, so the samples do not come from the distribution they
    describe."""
    torch = pytest.importorskip("torch")
    conversation = [{"role": "user", "content": "Say a or b."}]
    params = SamplingParams(max_new_tokens=1, temperature=1.0, top_p=0.5, seed=0)
    (completion,) = tiny.generate([conversation], [[]], params)
    with torch.no_grad():
        logits = tiny.model(torch.tensor([completion.prompt_token_ids])).logits[0, -1]
    full = torch.log_softmax(logits.float(), -1)[completion.completion_token_ids[0]]
    assert completion.logprobs[0] == pytest.approx(float(full), abs=1e-5)


def test_grpo_masks_episodes_cut_by_the_budget_and_penalises_them(uniform, tmp_path):
    from rlenv.train import GRPOTrainer
    from rlenv.train.grpo import sample_rewards

    config = _grpo_config(tmp_path, max_episode_tokens=6, truncation="mask")
    trainer = GRPOTrainer(config, uniform.model, uniform.tokenizer)
    batch = trainer.batch(0)
    for trajectory in batch.trajectories:
        assert sum(_turn_lengths(trajectory)) <= 6
    assert all(t.stop_reason == "max_episode_tokens" for t in batch.trajectories)
    assert all(batch.cut) and float(batch.tensors.mask.sum()) == 0.0

    # penalty: an episode whose turns are short but whose total reaches the budget
    (trajectory,) = rollout(
        TokenPolicy([3]),
        episodes("tests/Chatter-v0", n_tasks=1),
        params=SamplingParams(max_new_tokens=8, max_episode_tokens=6),
    )
    penalised = _grpo_config(
        tmp_path, max_new_tokens=8, max_episode_tokens=6, truncation="penalty", overlong_buffer=4
    )
    # per turn: 3 <= 8 - 4, no penalty; the episode: 6 tokens, 2 past 6 - 4 -> max(-1, -4/4)
    assert sample_rewards([trajectory], penalised) == [pytest.approx(-1.0)]
    unbudgeted = penalised.model_copy(update={"max_episode_tokens": None})
    assert sample_rewards([trajectory], unbudgeted) == [0.0]
