"""rlenv environments in TRL's real GRPOTrainer, on a CPU with a tiny random model."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
trl = pytest.importorskip("trl")
pytest.importorskip("datasets")

import rlenv  # noqa: E402
from rlenv import TaskHandle  # noqa: E402
from rlenv.adapters.trl import (  # noqa: E402
    TASK_KEY,
    RolloutFunction,
    UnsupportedTrainerSetup,
    build_dataset,
    episode_reward,
    reward_function,
    task_of,
)
from rlenv.testing import tiny_chat_model  # noqa: E402


def _args(tmp_path, **overrides):
    settings = dict(
        output_dir=str(tmp_path), use_cpu=True, bf16=False, per_device_train_batch_size=4,
        num_generations=4, max_completion_length=8, max_steps=2, logging_steps=1,
        learning_rate=1e-3, report_to=[], save_strategy="no", seed=0, disable_tqdm=True,
    )  # fmt: skip
    settings.update(overrides)
    return trl.GRPOConfig(**settings)


def test_the_dataset_carries_each_task_in_its_prompt():
    dataset = build_dataset("rlenv/Arithmetic-v0", n_tasks=3, seed=5, difficulty=1)
    env = rlenv.make("rlenv/Arithmetic-v0", difficulty=1)
    observation, info = env.reset(seed=6)
    assert len(dataset) == 3 and dataset[1]["task_id"] == info["task_id"]
    task = task_of(dataset[1]["prompt"])
    assert task == TaskHandle(env_id="rlenv/Arithmetic-v0", env_kwargs={"difficulty": 1},
                              task_id=info["task_id"])  # fmt: skip
    assert json.loads(dataset[1]["prompt"][0][TASK_KEY]) == {
        "env_id": "rlenv/Arithmetic-v0",
        "env_kwargs": {"difficulty": 1},
        "task_id": info["task_id"],
    }  # the tag format the verl and OpenRLHF rows carry too
    assert dataset[1]["prompt"][-1]["content"] == observation[-1]["content"]
    with pytest.raises(ValueError, match=TASK_KEY):
        task_of([{"role": "user", "content": "no task"}])


def test_the_reward_function_scores_with_the_env_and_keeps_unscored_out():
    dataset = build_dataset("rlenv/Arithmetic-v0", n_tasks=2, difficulty=1)
    env = rlenv.make("rlenv/Arithmetic-v0", difficulty=1)
    env.reset(seed=0)
    right = env.gold_action()
    reward = reward_function()
    prompts = [dataset[0]["prompt"], dataset[0]["prompt"], dataset[1]["prompt"]]
    completions = [[{"role": "assistant", "content": text}] for text in (right, "\\boxed{x}", "")]
    assert reward(prompts=prompts, completions=completions) == [1.0, 0.0, 0.0]
    assert [v.scored for v in reward.verdicts] == [True, True, True]
    assert reward.__name__ == "rlenv_reward"


def test_the_reward_function_leaves_out_what_it_cannot_judge():
    reward = reward_function()
    crash = build_dataset("adaptertest/Crashing-v0", n_tasks=1)[0]["prompt"]
    twice = build_dataset("adaptertest/SayTwice-v0", n_tasks=1)[0]["prompt"]
    prompts = [crash, crash, twice]
    completions = [[{"role": "assistant", "content": text}] for text in ("ok", "boom", "ok")]
    # the verifier crashed; a multi-turn env's first turn did not end the episode
    assert reward(prompts=prompts, completions=completions) == [1.0, None, None]
    assert "multi-turn" in reward.verdicts[2].reason


def test_trl_grpo_trains_on_env_rewards(tmp_path):
    model, tokenizer = tiny_chat_model()
    dataset = build_dataset("adaptertest/CountA-v0", n_tasks=8)
    reward = reward_function()
    seen: list[list[float]] = []

    def recorded(prompts, completions, **kwargs):
        values = reward(prompts=prompts, completions=completions, **kwargs)
        seen.append(values)
        return values

    recorded.__name__ = "rlenv_reward"
    trainer = trl.GRPOTrainer(
        model=model, reward_funcs=recorded, args=_args(tmp_path), train_dataset=dataset,
        processing_class=tokenizer,
    )  # fmt: skip
    trainer.train()
    logged = [row for row in trainer.state.log_history if "reward" in row]
    assert len(logged) == 2 and len(seen) == 2
    for row, values in zip(logged, seen, strict=True):
        assert row["reward"] == pytest.approx(sum(values) / len(values))
    # the rewards were the env's verdicts on the completions TRL generated
    assert all(v.parsed is not None for v in reward.verdicts)
    assert any(value > 0 for values in seen for value in values)


def _train_say_more(tmp_path, rollout_func):
    """TRL's GRPOTrainer for two steps on SayMore-v0 (multi-turn) with ``rollout_func``; returns
    the tokenizer, the trainer and each call's ``(prompts, output)``."""
    model, tokenizer = tiny_chat_model()
    dataset = build_dataset("adaptertest/SayMore-v0", n_tasks=8)
    outputs = []

    def spy(prompts, trainer):
        output = rollout_func(prompts, trainer)
        outputs.append((list(prompts), output))
        return output

    trainer = trl.GRPOTrainer(
        model=model, reward_funcs=episode_reward, train_dataset=dataset,
        args=_args(tmp_path, max_completion_length=40), processing_class=tokenizer,
        rollout_func=spy,
    )  # fmt: skip
    trainer.train()
    return tokenizer, trainer, outputs


def test_trl_grpo_trains_multi_turn_episodes_with_env_tokens_masked(tmp_path):
    rollout_func = RolloutFunction(max_new_tokens=6)
    tokenizer, trainer, outputs = _train_say_more(tmp_path, rollout_func)
    assert rollout_func.calls == 2
    assert [len(prompts) for prompts, _ in outputs] == [4, 4]  # TRL 1.16: repeated prompts
    assert all(len(output["completion_ids"]) == 4 for _, output in outputs)
    say_more = tokenizer("Say more.", add_special_tokens=False)["input_ids"]
    for _, output in outputs:
        for ids, mask, logprobs in zip(output["completion_ids"], output["env_mask"],
                                       output["logprobs"], strict=True):  # fmt: skip
            assert len(ids) == len(mask) == len(logprobs) <= 40  # max_completion_length
            assert 0 in mask and 1 in mask  # model turns and the env's reply
            env_tokens = [t for t, m in zip(ids, mask, strict=True) if m == 0]
            assert all(t in env_tokens for t in say_more)  # the env's words are masked out
    logged = [row for row in trainer.state.log_history if "reward" in row]
    rewards = [r for _, output in outputs for r in output["rlenv_reward"]]
    assert len(logged) == 2
    assert sum(row["reward"] for row in logged) == pytest.approx(
        sum(rewards) / len(rewards) * 2, rel=1e-5
    )
    json.dumps(outputs[0][1])  # plain data


def test_trl_grpo_trains_on_when_a_served_env_fails_at_reset(tmp_path, monkeypatch):
    """An episode whose served env could not start (the engine's ``reset_failed`` trajectory,
    no turns) becomes a TRL sample of its prompt and one end token, masked out, with reward
    None: TRL (1.16: ``unscorable_mask``, ``nanmean``) leaves it out of its group's baseline
    and of the logged reward, and training goes on."""
    import rlenv.rollout
    from rlenv.remote import ServerUnreachableError
    from rlenv.rollout.collector import _reset_failed

    real = rlenv.rollout.rollout

    def one_lost(policy, specs, **kwargs):  # entry 1 of each call: its server went away
        trajectories = real(policy, specs, **kwargs)
        gone = ServerUnreachableError("POST http://127.0.0.1:9/sessions failed: refused")
        trajectories[1] = _reset_failed(specs[1], policy, [gone, gone])
        return trajectories

    monkeypatch.setattr(rlenv.rollout, "rollout", one_lost)
    tokenizer, trainer, outputs = _train_say_more(tmp_path, RolloutFunction(max_new_tokens=6))
    assert len(outputs) == 2
    for prompts, output in outputs:
        rendered = tokenizer.apply_chat_template(
            list(prompts[1]), tokenize=False, add_generation_prompt=True
        )
        assert output["prompt_ids"][1] == tokenizer(rendered, add_special_tokens=False)["input_ids"]
        assert output["completion_ids"][1] == [tokenizer.eos_token_id]
        assert output["env_mask"][1] == [0] and output["logprobs"][1] == [0.0]
        assert output["rlenv_reward"][1] is None
        assert all(r is not None for i, r in enumerate(output["rlenv_reward"]) if i != 1)
    logged = [row for row in trainer.state.log_history if "reward" in row]
    assert len(logged) == 2
    for row, (_, output) in zip(logged, outputs, strict=True):
        scored = [r for r in output["rlenv_reward"] if r is not None]
        assert row["reward"] == pytest.approx(sum(scored) / len(scored), rel=1e-5)
        assert row["loss"] == row["loss"]  # finite, not NaN
    with pytest.raises(ValueError, match="no turns"):  # without unplayed=: a clear error
        from rlenv.adapters.trl import trl_samples

        trl_samples(
            [
                _reset_failed(
                    rlenv.rollout.EpisodeSpec("x/Y-v0", seed=0),
                    SimpleNamespace(name="p"),
                    [ServerUnreachableError("gone")],
                )
            ],
            None,
        )


# -- RolloutFunction against trainers built to GRPOTrainer's attribute names ----------------------


@pytest.fixture(scope="module")
def tiny():
    return tiny_chat_model(0)


def fake_trainer(tiny, *, rank=0, ranks=1, training=True, **settings):
    """An object with the attributes RolloutFunction reads from a TRL 1.16 ``GRPOTrainer``:
    those ``GRPOTrainer.__init__`` sets (``num_generations``, ``num_generations_eval``,
    ``temperature``, ``top_p``, ``top_k``, ``min_p``, ``repetition_penalty``,
    ``max_completion_length``, ``use_vllm``, ``vllm_mode``, ``vllm_generation``,
    ``generation_kwargs``), transformers' ``Trainer`` (``model``, ``model_wrapped``,
    ``accelerator``, ``processing_class``, ``is_fsdp_enabled``) and ``GRPOConfig``'s ``args``."""
    model, tokenizer = tiny
    model.train(training)
    state = SimpleNamespace(
        deepspeed_plugin=settings.pop("deepspeed_plugin", None),
        fsdp_plugin=settings.pop("fsdp_plugin", None),
    )
    accelerator = SimpleNamespace(process_index=rank, num_processes=ranks, state=state,
                                  unwrap_model=lambda wrapped: wrapped)  # fmt: skip
    args = SimpleNamespace(
        ds3_gather_for_generation=settings.pop("ds3_gather_for_generation", True),
        gradient_checkpointing_kwargs=None,
        generation_kwargs=settings.pop("generation_kwargs", None),
        vllm_tensor_parallel_size=settings.pop("vllm_tensor_parallel_size", 1),
        max_completion_length=settings.get("max_completion_length", 32),
    )
    values = dict(
        model=model, model_wrapped=model, accelerator=accelerator, processing_class=tokenizer,
        args=args, num_generations=4, num_generations_eval=None, temperature=1.0, top_p=1.0,
        top_k=0, min_p=None, repetition_penalty=1.0, max_completion_length=32,
        use_vllm=False, vllm_mode="colocate", is_fsdp_enabled=False, is_deepspeed_enabled=False,
        generation_kwargs=None,
    )  # fmt: skip
    values.update(settings)
    values["num_generations_eval"] = values["num_generations_eval"] or values["num_generations"]
    return SimpleNamespace(**values)


@pytest.fixture
def recorded(monkeypatch):
    """Every ``rlenv.rollout.rollout`` call RolloutFunction makes: (specs, params, trajectories)."""
    import rlenv.rollout

    calls = []
    real = rlenv.rollout.rollout

    def spy(policy, specs, **kwargs):
        trajectories = real(policy, specs, **kwargs)
        calls.append((list(specs), kwargs["params"], trajectories, policy))
        return trajectories

    monkeypatch.setattr(rlenv.rollout, "rollout", spy)
    return calls


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("ranks", [1, 2, 3])
def test_one_episode_per_entry_in_order_on_every_rank(tiny, recorded, ranks, training):
    # train: 3 prompts x num_generations=4; eval: 4 prompts x num_generations_eval=3. Both are
    # 12 entries, cut into `ranks` equal slices as TRL does, so groups straddle ranks (2 ranks:
    # train slices of 6, eval slices of 6; 3 ranks: eval slices of 4).
    dataset = build_dataset("adaptertest/CountA-v0", n_tasks=4, seed=3)
    size = 4 if training else 3
    repeated = [dataset[i]["prompt"] for i in range(12 // size) for _ in range(size)]
    rollout_func = RolloutFunction(max_new_tokens=4)
    length = 12 // ranks
    for rank in range(ranks):
        trainer = fake_trainer(tiny, rank=rank, ranks=ranks, training=training,
                               num_generations=4, num_generations_eval=3)  # fmt: skip
        entries = repeated[rank * length : (rank + 1) * length]
        output = rollout_func(entries, trainer)
        assert all(len(column) == length for column in output.values())
        specs, _, trajectories, _ = recorded[-1]
        wanted = [task_of(prompt).task_id for prompt in entries]
        assert [spec.task_id for spec in specs] == wanted
        assert [trajectory.task_id for trajectory in trajectories] == wanted
        # each entry is sample (global position % group size) of its group
        assert [spec.group for spec in specs] == [(rank * length + i) % size for i in range(length)]
    assert rollout_func.calls == ranks


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        (dict(use_vllm=True, vllm_mode="server"), "vllm_mode='server'"),
        (dict(use_vllm=True, vllm_tensor_parallel_size=2), "vllm_tensor_parallel_size=2"),
        (dict(is_fsdp_enabled=True, fsdp_plugin=SimpleNamespace(fsdp_version=2)), "FSDP"),
        (
            dict(deepspeed_plugin=SimpleNamespace(zero_stage=3), ds3_gather_for_generation=False),
            "ds3_gather_for_generation=False",
        ),
    ],
    ids=["vllm-server", "vllm-tensor-parallel", "fsdp", "zero3-no-gather"],
)
def test_setups_it_cannot_drive_are_refused_naming_environment_factory(tiny, settings, named):
    dataset = build_dataset("adaptertest/CountA-v0", n_tasks=1)
    trainer = fake_trainer(tiny, **settings)
    with pytest.raises(UnsupportedTrainerSetup) as raised:
        RolloutFunction(max_new_tokens=2)([dataset[0]["prompt"]] * 4, trainer)
    assert named in str(raised.value) and "environment_factory" in str(raised.value)
    assert "rlenv.adapters.trl_environment" in str(raised.value)


def test_zero3_generates_under_trls_own_gather_context(tiny, recorded, monkeypatch):
    import trl.models

    entered = []
    real = trl.models.unwrap_model_for_generation

    def spy(model, accelerator, **kwargs):
        entered.append(kwargs)
        if accelerator.state.deepspeed_plugin is not None:  # no deepspeed here: skip the gather
            accelerator = SimpleNamespace(**{**vars(accelerator), "state": SimpleNamespace(
                deepspeed_plugin=None, fsdp_plugin=None)})  # fmt: skip
        return real(model, accelerator, **kwargs)

    monkeypatch.setattr(trl.models, "unwrap_model_for_generation", spy)
    dataset = build_dataset("adaptertest/CountA-v0", n_tasks=1)
    trainer = fake_trainer(tiny, deepspeed_plugin=SimpleNamespace(zero_stage=3))
    trainer.generation_kwargs = {"max_new_tokens": 32}  # GRPOTrainer's own, built from args
    output = RolloutFunction(max_new_tokens=3)([dataset[0]["prompt"]] * 4, trainer)
    assert len(output["completion_ids"]) == 4
    # the arguments GRPOTrainer._generate_single_turn passes
    assert entered == [dict(gather_deepspeed3_params=True,
                            generation_kwargs={"max_new_tokens": 32},
                            gradient_checkpointing_kwargs=None)]  # fmt: skip
    assert trainer.model.training  # left as it was


def test_the_whole_completion_respects_max_completion_length(tiny, recorded):
    # SayMore: two model turns with the env's "Say more." between them
    dataset = build_dataset("adaptertest/SayMore-v0", n_tasks=2)
    prompts = [dataset[i]["prompt"] for i in range(2) for _ in range(4)]
    for budget in (5, 9, 14, 200):
        trainer = fake_trainer(tiny, max_completion_length=budget)
        output = RolloutFunction(max_new_tokens=6)(prompts, trainer)
        _, params, trajectories, _ = recorded[-1]
        cut = 0
        assert params.max_new_tokens == min(6, budget) and params.max_episode_tokens == budget
        assert len(output["completion_ids"]) == len(prompts)
        for ids, mask, trajectory, reward in zip(output["completion_ids"], output["env_mask"],
                                                 trajectories, output["rlenv_reward"],
                                                 strict=True):  # fmt: skip
            assert 0 < len(ids) <= budget
            full = trajectory.token_sequence()
            if len(full.token_ids) - full.prompt_length > budget:  # cut after the first turn
                assert 0 not in mask and reward == trajectory.turns[0].reward
                cut += 1
            else:
                assert ids == full.token_ids[full.prompt_length :]
                assert reward == trajectory.reward
        if budget in (9, 14):  # the env's reply pushed these past the budget
            assert cut > 0
        if budget == 200:
            assert cut == 0 and all(0 in mask for mask in output["env_mask"])  # both turns kept


def test_trls_sampling_parameters_reach_the_engine_or_are_refused(tiny, recorded):
    dataset = build_dataset("adaptertest/CountA-v0", n_tasks=1)
    prompts = [dataset[0]["prompt"]] * 4
    trainer = fake_trainer(tiny, temperature=0.7, top_p=0.9, max_completion_length=3)
    RolloutFunction(max_new_tokens=8)(prompts, trainer)
    params = recorded[-1][1]
    assert (params.temperature, params.top_p, params.max_new_tokens) == (0.7, 0.9, 3)
    # rlenv's transformers decoder has no top-k, min-p, repetition penalty: refused, not dropped
    for setting in (dict(top_k=50), dict(min_p=0.1), dict(repetition_penalty=1.2),
                    dict(generation_kwargs={"do_sample": False})):  # fmt: skip
        name = next(iter(setting))
        with pytest.raises(UnsupportedTrainerSetup, match=name):
            RolloutFunction()(prompts, fake_trainer(tiny, **setting))
    # their "off" values are accepted
    RolloutFunction(max_new_tokens=2)(prompts, fake_trainer(tiny, top_k=None, min_p=0.0))


@pytest.fixture
def fake_vllm(monkeypatch, tiny):
    sys.path.insert(0, str(Path(__file__).parents[1] / "rollout"))
    import fake_vllm

    module = fake_vllm.install(monkeypatch)

    @dataclass(kw_only=True)
    class WithTRLFields(fake_vllm.SamplingParams):  # fields vLLM has and the fake leaves out
        top_k: int = 0
        min_p: float = 0.0
        repetition_penalty: float = 1.0

    module.SamplingParams = WithTRLFields
    fake_vllm.register_model("tiny-trl", *tiny)
    return fake_vllm


def test_use_vllm_colocate_generates_with_trls_engine(tiny, fake_vllm, recorded):
    engine = fake_vllm.LLM("tiny-trl", logprobs_mode="processed_logprobs", enable_sleep_mode=True)
    synced = []
    generation = SimpleNamespace(llm=engine, enable_sleep_mode=True, _llm_weights_sleeping=True,
                                 sync_weights=lambda: synced.append(1) or engine.wake_up(
                                     tags=["weights"]))  # fmt: skip
    engine.sleep(level=2)  # as VLLMGeneration._init_vllm leaves it in sleep mode
    trainer = fake_trainer(tiny, use_vllm=True, vllm_generation=generation, top_k=5,
                           repetition_penalty=1.1, generation_kwargs={"min_p": 0.05},
                           max_completion_length=40)  # fmt: skip
    dataset = build_dataset("adaptertest/SayMore-v0", n_tasks=1)
    output = RolloutFunction(max_new_tokens=6)([dataset[0]["prompt"]] * 4, trainer)
    assert type(recorded[-1][3]).__name__ == "TRLColocatedVLLM"
    requests = [call for call in engine.calls if call[0] == "generate"]
    assert len(requests) == 2  # one call per turn, token in, token out
    for _, _, params, _ in requests:
        assert all((p.top_k, p.repetition_penalty, p.min_p) == (5, 1.1, 0.05) for p in params)
    assert synced == [1] and engine.calls[-1] == ("sleep", 2)  # put back as TRL leaves it
    assert generation._llm_weights_sleeping
    for ids, mask in zip(output["completion_ids"], output["env_mask"], strict=True):
        assert 0 in mask and 1 in mask and len(ids) <= 40
    with pytest.raises(UnsupportedTrainerSetup, match="seed"):
        bad = fake_trainer(tiny, use_vllm=True, vllm_generation=generation,
                           generation_kwargs={"seed": 1})  # fmt: skip
        RolloutFunction()([dataset[0]["prompt"]] * 4, bad)
