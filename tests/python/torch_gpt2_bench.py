"""PyTorch's side of `cargo xtask bench-gpu`: GPT-2 training throughput in eager PyTorch.

  torch_gpt2_bench.py [--preset gpt2|gpt2-medium] [--batch B] [--seq T] [--steps N] [--device cuda|cpu]

Trains transformers' GPT2LMHeadModel (random weights from GPT2Config, nothing downloaded) with
AdamW (lr 1e-4, nanoGPT's betas and weight decay, gradients clipped at 1.0, as the gpt plugin's
step does) on random tokens, first in fp32 with TF32 off, then in bf16 autocast, and prints one
JSON line per precision: tokens/s (median of the timed steps), step seconds and peak memory.
"""
import argparse
import json
import statistics
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

SHAPES = {"gpt2": (12, 12, 768), "gpt2-medium": (24, 16, 1024)}


def run(args, precision):
    n_layer, n_head, n_embd = SHAPES[args.preset]
    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=n_layer, n_head=n_head, n_embd=n_embd, n_positions=1024, vocab_size=50257,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )
    device = torch.device(args.device)
    model = GPT2LMHeadModel(config).to(device)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
    ids = torch.randint(0, 50257, (args.batch, args.seq), device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(args.steps + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - start)
    step = statistics.median(times)
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else None
    return {
        "framework": "pytorch-eager",
        "torch": torch.__version__,
        "precision": precision,
        "preset": args.preset,
        "batch": args.batch,
        "seq": args.seq,
        "step_s": step,
        "tokens_per_s": args.batch * args.seq / step,
        "peak_bytes": peak,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "loss": float(loss),
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="gpt2", choices=sorted(SHAPES))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--device", default="cuda")
    args = p.parse_args()
    # fp32 means fp32: no TF32 in matmuls or convolutions.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for precision in ("fp32", "bf16"):
        print(json.dumps(run(args, precision)), flush=True)


if __name__ == "__main__":
    main()
