"""Tests that need a CUDA GPU (marked ``cuda``; skipped elsewhere). ``benchmarks/gpu_check.py``
runs them on a GPU machine with ``pytest -m cuda``; on the CPU machines they skip with the
reason, and the same properties are tested on the CPU by the other test files."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def tiny(vocab_size: int = 512):
    import transformers

    from rlenv.testing import tiny_chat_model

    if vocab_size == 512:
        return tiny_chat_model(0)
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
    )  # fmt: skip
    return transformers.LlamaForCausalLM(config), None


def test_the_decoding_loop_and_generate_agree_greedily_on_cuda():
    from rlenv.rollout import SamplingParams
    from rlenv.rollout.transformers import TransformersPolicy

    model, tokenizer = tiny()
    conversations = [[{"role": "user", "content": f"Say a or b. {i}"}] for i in range(6)]
    params = SamplingParams(max_new_tokens=12, temperature=0.0)
    outputs = {}
    for decoder in ("loop", "hf"):
        policy = TransformersPolicy(
            model, tokenizer, device="cuda", cast_bf16=False, decoder=decoder
        )
        outputs[decoder] = policy.generate(conversations, [[]] * 6, params)
    for loop, hf in zip(outputs["loop"], outputs["hf"], strict=True):
        assert loop.completion_token_ids == hf.completion_token_ids
        assert loop.logprobs == pytest.approx(hf.logprobs, abs=1e-4)


def test_chunked_log_probs_hold_less_gpu_memory_and_equal_the_full_path():
    """A 32k vocabulary, 4 x 1,024 positions: the full-logits path holds [4096 x 32k] logits
    several times over; the chunked one, one chunk. Measured with the CUDA allocator's peak."""
    from rlenv.train.algorithm import token_logprobs

    model, _ = tiny(32_000)
    model = model.cuda()
    ids = torch.randint(0, 32_000, (4, 1024), device="cuda")
    mask = torch.ones_like(ids)
    results = {}
    for name, chunk in (("full", 0), ("chunked", 512)):
        model.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logprobs, _ = token_logprobs(model, ids, mask, chunk_tokens=chunk)
        logprobs.sum().backward()
        torch.cuda.synchronize()
        results[name] = (
            torch.cuda.max_memory_allocated() - before,
            logprobs.detach().float(),
            model.lm_head.weight.grad.detach().float().clone(),
        )
    full, chunked = results["full"], results["chunked"]
    assert chunked[0] < full[0] / 3, (chunked[0], full[0])
    torch.testing.assert_close(chunked[1], full[1], rtol=0, atol=2e-2)
    torch.testing.assert_close(chunked[2], full[2], rtol=5e-2, atol=5e-3)


def test_one_grpo_step_trains_on_cuda_in_bf16(tmp_path):
    from rlenv import GeneratedTasks, Task, TextEnv, Verdict, register, unregister
    from rlenv.train import GRPOConfig
    from rlenv.train.grpo import GRPOTrainer

    class CountA(TextEnv):
        def load_tasks(self) -> GeneratedTasks:
            return GeneratedTasks(lambda rng: Task(prompt=f"Say a or b. {rng.randint(0, 9)}"))

        def verify(self, task: Task, completion: str) -> Verdict:
            return Verdict(reward=min(1.0, completion.count("a") / 4))

    register("cudatest/CountA-v0", CountA)
    try:
        model, tokenizer = tiny()
        before = {k: v.clone() for k, v in model.state_dict().items()}
        config = GRPOConfig(
            env_id="cudatest/CountA-v0", out=str(tmp_path), steps=1, prompts_per_step=4,
            group_size=4, max_new_tokens=8, precision="bf16", device="cuda", eval_tasks=0,
            progress=False, plots=False, learning_rate=1e-2, warmup_steps=0,
        )  # fmt: skip
        trainer = GRPOTrainer(config, model, tokenizer)
        metrics = trainer.train_step()
        assert trainer.model.lm_head.weight.device.type == "cuda"
        assert trainer.model.lm_head.weight.dtype == torch.float32  # fp32 master weights
        if metrics["trained_tokens"]:
            assert metrics["skipped"] is None and metrics["grad_norm"] > 0
            after = trainer.model.state_dict()
            assert any(not torch.equal(after[k].cpu(), v) for k, v in before.items())
    finally:
        unregister("cudatest/CountA-v0")
