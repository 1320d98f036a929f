"""Writes tests/fixtures/checkpoints/torch_miner_tiny.pth and torch_miner_tiny.json with real PyTorch.

A miner's checkpoint made entirely in PyTorch: a GPT written here with nanoGPT's module names
(`transformer.wte`, `transformer.h.N.attn.c_attn`, ..., `lm_head` tied to `wte`) in the `gpt`
plugin's `tiny` configuration (2 layers, 2 heads, width 32, context 16, bytes, GELU with the tanh
approximation, LayerNorm eps 1e-5), trained for 30 AdamW steps, then saved with `torch.save` under
the keys the host's miners write (format_version, role, plugin, model, optimizer, scheduler,
global_step, data). The model is `model.state_dict()` as PyTorch gives it, tied `lm_head.weight`
included. The JSON holds PyTorch's logits for a fixed text, which the host must reproduce after
loading the file (tests/checkpoints.rs).

Generated once (PyTorch is too large for CI) and committed; rerun with any PyTorch 2.x to
regenerate:  python tests/python/make_torch_miner_checkpoint.py
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

N_LAYER, N_HEAD, N_EMBD, BLOCK, VOCAB = 2, 2, 32, 16, 256
STEPS, LR, SEED = 30, 1e-3, 7
# The plugin's effective config for `preset = "tiny"`, as the host saves it with a checkpoint.
CONFIG = (
    'preset = "tiny"\nn_layer = 2\nn_head = 2\nn_embd = 32\nblock_size = 16\nvocab_size = 256\n'
    'tokenizer = "bytes"\nseed = 7\nweight_decay = 0.1\nbeta1 = 0.9\nbeta2 = 0.95\neps = 1e-8\n'
    "grad_clip = 1.0\n"
)
# Two sequences of BLOCK bytes whose logits the host must reproduce.
PROBE_TEXT = "The miner trains; the validator scores it."[: 2 * BLOCK]


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_attn = nn.Linear(N_EMBD, 3 * N_EMBD)
        self.c_proj = nn.Linear(N_EMBD, N_EMBD)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        shape = (b, t, N_HEAD, c // N_HEAD)
        q, k, v = (z.view(shape).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, c))


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_fc = nn.Linear(N_EMBD, 4 * N_EMBD)
        self.c_proj = nn.Linear(4 * N_EMBD, N_EMBD)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(N_EMBD)
        self.attn = Attention()
        self.ln_2 = nn.LayerNorm(N_EMBD)
        self.mlp = Mlp()

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Gpt(nn.Module):
    def __init__(self):
        super().__init__()
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(VOCAB, N_EMBD),
                wpe=nn.Embedding(BLOCK, N_EMBD),
                h=nn.ModuleList(Block() for _ in range(N_LAYER)),
                ln_f=nn.LayerNorm(N_EMBD),
            )
        )
        self.lm_head = nn.Linear(N_EMBD, VOCAB, bias=False)
        self.lm_head.weight = self.transformer.wte.weight
        for name, p in self.named_parameters():
            if name.endswith("weight") and p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx):
        t = idx.shape[1]
        x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(t))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


def main():
    torch.manual_seed(SEED)
    model = Gpt()
    text = (" ".join(f"block {i} pays {i * 7 % 13} to uid {i % 5};" for i in range(400))).encode()
    data = torch.tensor(list(text), dtype=torch.long)
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    rest = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
        lr=LR,
        betas=(0.9, 0.95),
        eps=1e-8,
    )
    gen = torch.Generator().manual_seed(SEED)
    for _ in range(STEPS):
        starts = torch.randint(0, len(data) - BLOCK - 1, (4,), generator=gen)
        x = torch.stack([data[s : s + BLOCK] for s in starts])
        y = torch.stack([data[s + 1 : s + BLOCK + 1] for s in starts])
        loss = F.cross_entropy(model(x).view(-1, VOCAB), y.view(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    # The host's optimizer layout: `<param>.exp_avg`, then `<param>.exp_avg_sq`, then `step`.
    params = list(model.named_parameters())
    optimizer = {}
    for suffix, key in ((".exp_avg", "exp_avg"), (".exp_avg_sq", "exp_avg_sq")):
        for name, p in params:
            optimizer[name + suffix] = opt.state[p][key].clone()
    optimizer["step"] = torch.tensor(STEPS, dtype=torch.int64)
    warmup, decay_steps, min_lr = 10, 1000, LR / 10
    ratio = (STEPS - warmup) / (decay_steps - warmup)
    state = {
        "format_version": 1,
        "role": "miner",
        "plugin": {"name": "gpt", "version": "0.1.0", "architecture": "gpt", "config": CONFIG},
        "model": model.state_dict(),
        "optimizer": optimizer,
        "scheduler": {
            "lr": LR,
            "min_lr": min_lr,
            "warmup_steps": warmup,
            "decay_steps": decay_steps,
            "last_lr": min_lr + 0.5 * (1 + math.cos(math.pi * ratio)) * (LR - min_lr),
        },
        "global_step": STEPS,
        "data": {"seed": SEED, "step": STEPS, "noise_state": 0},
    }
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "..", "fixtures", "checkpoints")
    torch.save(state, os.path.join(out, "torch_miner_tiny.pth"))
    model.eval()
    with torch.no_grad():
        probe = torch.tensor(list(PROBE_TEXT.encode()), dtype=torch.long).view(2, BLOCK)
        logits = model(probe)
    with open(os.path.join(out, "torch_miner_tiny.json"), "w") as f:
        json.dump(
            {
                "torch": torch.__version__,
                "text": PROBE_TEXT,
                "global_step": STEPS,
                "final_loss": loss.item(),
                "logits": [round(v, 6) for v in logits.flatten().tolist()],
            },
            f,
        )
        f.write("\n")
    print("wrote", out, "loss", loss.item())


if __name__ == "__main__":
    main()
