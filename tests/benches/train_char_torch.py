"""The baseline for BENCHMARKS.md's training benchmark: the same GPT as the `gpt` plugin's
`nano` preset (nanoGPT's character-level CPU configuration: 4 layers, 4 heads, width 128,
context 64, no dropout, tied embeddings, pre-LayerNorm, GELU) trained in PyTorch on the same
bytes with the same split, schedule and optimizer settings as

    neuron-host train --preset nano --dataset FILE --batch-size 12 --lr 1e-3 ...

Usage: python train_char_torch.py FILE --steps N [--warmup W] [--eval-batches M] [--threads T]
Prints one JSON line per evaluation and a final one with the wall time.
"""

import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.ln2 = nn.LayerNorm(width)
        self.up = nn.Linear(width, 4 * width)
        self.down = nn.Linear(4 * width, width)
        self.heads = heads

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        shape = (b, t, self.heads, c // self.heads)
        q, k, v = (z.view(shape).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.down(F.gelu(self.up(self.ln2(x)), approximate="tanh"))


class Gpt(nn.Module):
    def __init__(self, vocab, context, layers, heads, width):
        super().__init__()
        self.tok = nn.Embedding(vocab, width)
        self.pos = nn.Embedding(context, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(width)
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("down.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * layers))

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx, targets):
        t = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(t))
        for blk in self.blocks:
            x = blk(x)
        logits = self.ln(x) @ self.tok.weight.T
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


def lr_at(step, lr, min_lr, warmup, decay):
    # The host's LrSchedule: linear warm-up, cosine to min_lr at `decay`.
    if step < warmup:
        return lr * (step + 1) / (warmup + 1)
    if step > decay:
        return min_lr
    ratio = (step - warmup) / max(decay - warmup, 1)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=12)
    ap.add_argument("--context", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-lr", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--eval-every", type=int, default=0)
    ap.add_argument("--eval-batches", type=int, default=20)
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    data = torch.tensor(list(open(a.file, "rb").read()), dtype=torch.long)
    cut = len(data) - int(len(data) * a.val_fraction)
    train, val = data[:cut], data[cut:]
    model = Gpt(256, a.context, 4, 4, 128)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=a.lr,
        betas=(0.9, 0.95),
        eps=1e-8,
    )
    gen = torch.Generator().manual_seed(a.seed)

    def batch(split, g):
        ix = torch.randint(len(split) - a.context, (a.batch_size,), generator=g)
        x = torch.stack([split[i : i + a.context] for i in ix])
        y = torch.stack([split[i + 1 : i + 1 + a.context] for i in ix])
        return x, y

    @torch.no_grad()
    def estimate(step, elapsed):
        model.eval()
        out = {"event": "eval", "step": step, "elapsed_s": elapsed}
        for name, split in (("train_loss", train), ("val_loss", val)):
            g = torch.Generator().manual_seed(a.seed ^ 0xE7A15EED)
            out[name] = sum(model(*batch(split, g)).item() for _ in range(a.eval_batches)) / a.eval_batches
        model.train()
        print(json.dumps(out), flush=True)
        return out

    started = time.perf_counter()
    trained = 0.0
    for step in range(a.steps):
        if a.eval_every and step % a.eval_every == 0:
            estimate(step, time.perf_counter() - started)
        t0 = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = lr_at(step, a.lr, a.min_lr, a.warmup, a.steps)
        loss = model(*batch(train, gen))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        trained += time.perf_counter() - t0
    last = estimate(a.steps, time.perf_counter() - started)
    print(
        json.dumps(
            {
                "event": "done",
                "steps": a.steps,
                "val_loss": last["val_loss"],
                "train_s": trained,
                "s_per_step": trained / a.steps,
                "wall_s": time.perf_counter() - started,
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
