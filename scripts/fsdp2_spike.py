"""FSDP2 (fully_shard) on CPU + gloo: equality with a 1-process run, and DCP resume.

Run:
  torchrun --nproc_per_node=2 fsdp2_cpu.py --out runs/ws2      (sharded)
  torchrun --nproc_per_node=1 fsdp2_cpu.py --out runs/ws1      (reference, also under fully_shard)
  python fsdp2_cpu.py --plain --out runs/plain                  (no torch.distributed at all)
Each writes losses / grad norms / full params after each step to OUT/result.pt (rank 0).
With --resume: steps 0..1, DCP save, fresh model + optimizer, DCP load, step 2; compares to
the uninterrupted step 2.
"""

import argparse
import os
import time

import torch
import torch.distributed as dist
from transformers import LlamaConfig, LlamaForCausalLM

p = argparse.ArgumentParser()
p.add_argument("--out", required=True)
p.add_argument("--plain", action="store_true")
p.add_argument("--steps", type=int, default=3)
p.add_argument("--mp", action="store_true", help="bf16 MixedPrecisionPolicy")
p.add_argument("--split", action="store_true", help="chunked path: model.model + lm_head")
p.add_argument(
    "--naive-split",
    action="store_true",
    help="call model.model/lm_head directly WITHOUT own FSDP units",
)
p.add_argument(
    "--fwd-method",
    action="store_true",
    help="split path via register_fsdp_forward_method on the root",
)
p.add_argument("--resume", action="store_true")
args = p.parse_args()

torch.manual_seed(0)
torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)

distributed = not args.plain
if distributed:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
else:
    rank, world = 0, 1


def build():
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=128,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(cfg).float()
    if distributed:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import (
            MixedPrecisionPolicy,
            fully_shard,
            register_fsdp_forward_method,
        )

        mesh = init_device_mesh("cpu", (world,))
        kw = dict(mesh=mesh)
        if args.mp:
            kw["mp_policy"] = MixedPrecisionPolicy(
                param_dtype=torch.bfloat16, reduce_dtype=torch.float32
            )
        for layer in model.model.layers:
            fully_shard(layer, **kw)
        if args.split and not (args.naive_split or args.fwd_method):
            # lm_head is called directly by the chunked log-probs: give it its own FSDP unit
            fully_shard(model.lm_head, **kw)
            fully_shard(model.model, **kw)  # the decoder (embeddings + norm), called directly
        fully_shard(model, **kw)
        if args.fwd_method:
            # alternative: a root method that does decoder + chunked head, registered with FSDP
            register_fsdp_forward_method(model, "chunked_nll")
    return model


def batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 128, (8, 16), generator=g)
    mask = torch.ones_like(ids)
    mask[::3, 12:] = 0  # some padding so per-rank token counts differ
    return ids, mask


def _chunked(self, ids, mask):
    hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
    tgt = mask[:, 1:] != 0
    h = hidden[:, :-1][tgt]
    out = 0.0
    for chunk_h, chunk_t in zip(h.split(16), ids[:, 1:][tgt].split(16), strict=False):
        out = out + torch.nn.functional.cross_entropy(
            self.lm_head(chunk_h).float(), chunk_t, reduction="sum"
        )
    return out


LlamaForCausalLM.chunked_nll = _chunked


def loss_sum(model, ids, mask):
    """Sum of per-token NLL over real targets (normalised globally by the caller)."""
    if args.fwd_method:
        return model.chunked_nll(ids, mask)
    if args.split:
        hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
        tgt = mask[:, 1:] != 0
        h = hidden[:, :-1][tgt]
        out = 0.0
        for chunk_h, chunk_t in zip(h.split(16), ids[:, 1:][tgt].split(16), strict=False):
            logits = model.lm_head(chunk_h).float()
            out = out + torch.nn.functional.cross_entropy(logits, chunk_t, reduction="sum")
        return out
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    tgt = mask[:, 1:] != 0
    return torch.nn.functional.cross_entropy(logits[tgt], ids[:, 1:][tgt], reduction="sum")


def make_opt(model):
    return torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)


def full_params(model):
    out = {}
    for n, p_ in model.named_parameters():
        t = p_.full_tensor() if hasattr(p_, "full_tensor") else p_
        out[n] = t.detach().clone()
    return out


def step(model, opt, ids, mask):
    # rank's share of the batch: contiguous rows (a GRPO group would be kept whole)
    rows = ids.shape[0] // world
    sl = slice(rank * rows, (rank + 1) * rows)
    local_ids, local_mask = ids[sl], mask[sl]
    total_tokens = (mask[:, 1:] != 0).sum()  # global normaliser: known before the step
    ctx = (
        torch.autocast("cpu", dtype=torch.bfloat16)
        if (args.mp and not distributed)
        else torch.autocast("cpu", enabled=False)
    )
    with ctx:
        local = loss_sum(model, local_ids, local_mask) / total_tokens
    # FSDP2 averages gradients over ranks (divide by world): scale so the sum is the global loss
    (local * world).backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    if hasattr(norm, "full_tensor"):
        norm = norm.full_tensor()
    loss = local.detach().clone()
    if distributed:
        dist.all_reduce(loss)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return float(loss), float(norm)


model = build()
opt = make_opt(model)
ids, mask = batch()
losses, norms, params, times = [], [], [], []
for s in range(args.steps):
    t0 = time.perf_counter()
    loss, n = step(model, opt, ids, mask)
    times.append(time.perf_counter() - t0)
    losses.append(loss)
    norms.append(n)
    params.append(full_params(model))
    if s == 1 and args.resume:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import (
            get_model_state_dict,
            get_optimizer_state_dict,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        ckpt = os.path.join(args.out, "ckpt")
        state = {
            "model": get_model_state_dict(model),
            "optim": get_optimizer_state_dict(model, opt),
        }
        dcp.save(state, checkpoint_id=ckpt)
        saved_after = (losses[:], norms[:])

if rank == 0:
    os.makedirs(args.out, exist_ok=True)
    print(f"world={world} losses={losses} norms={norms} sec/step={[round(t, 4) for t in times]}")
    torch.save(
        {"losses": losses, "norms": norms, "params": params, "times": times},
        os.path.join(args.out, "result.pt"),
    )

if args.resume:
    # fresh model + optimizer (different init to prove the load overwrites), load, run step 2
    torch.manual_seed(123)
    model2 = build()
    with torch.no_grad():
        for p_ in model2.parameters():
            p_.add_(1.0)
    opt2 = make_opt(model2)
    state = {"model": get_model_state_dict(model2), "optim": get_optimizer_state_dict(model2, opt2)}
    dcp.load(state, checkpoint_id=ckpt)
    set_model_state_dict(model2, state["model"])
    set_optimizer_state_dict(model2, opt2, state["optim"])
    loss, n = step(model2, opt2, ids, mask)
    p2 = full_params(model2)
    if rank == 0:
        maxdiff = max((p2[k] - params[2][k]).abs().max().item() for k in p2)
        print(
            f"RESUME step2: loss {loss!r} vs {losses[2]!r}  norm {n!r} vs {norms[2]!r}  "
            f"max|dparam|={maxdiff}"
        )

if distributed:
    dist.barrier()
    dist.destroy_process_group()
