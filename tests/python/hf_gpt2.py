"""The transformers side of the Hugging Face GPT-2 interop test (tests/hf_gpt2.rs).

  hf_gpt2.py make DIR SEED TEXT [VOCAB]
                                  builds a small GPT2LMHeadModel from a GPT2Config (random
                                  weights, nothing downloaded; vocabulary 256 unless VOCAB),
                                  saves it to DIR with save_pretrained (safetensors), and prints
                                  its logits and loss on TEXT's bytes as JSON
  hf_gpt2.py check DIR TEXT       loads DIR with GPT2LMHeadModel.from_pretrained and prints the
                                  same JSON
  hf_gpt2.py tokenize DIR FILE    loads the tokenizer in DIR (AutoTokenizer: the fast one
                                  converted from vocab.json and merges.txt, and GPT2Tokenizer, the
                                  slow one) and prints both encodings of FILE's text, and the
                                  fast one's decoding of its ids, as JSON

TEXT is taken as sequences of the model's context (16 byte tokens). The weights are random
everywhere (LayerNorm gains and every bias too), so a tensor imported in the wrong place or
orientation shows in the logits.
"""
import json
import sys

import torch
from transformers import GPT2Config, GPT2LMHeadModel

N_LAYER, N_HEAD, N_EMBD, BLOCK, VOCAB = 2, 2, 32, 16, 256


def windows(text):
    ids = list(text.encode("utf-8"))
    assert len(ids) % BLOCK == 0, "TEXT must be whole sequences of 16 bytes"
    return torch.tensor(ids, dtype=torch.long).view(-1, BLOCK)


def report(model, text):
    model.eval()
    ids = windows(text)
    with torch.no_grad():
        out = model(input_ids=ids, labels=ids)
    return {"logits": [round(float(x), 7) for x in out.logits.flatten()], "loss": float(out.loss)}


def make(directory, seed, text, vocab=VOCAB):
    torch.manual_seed(int(seed))
    config = GPT2Config(
        n_layer=N_LAYER,
        n_head=N_HEAD,
        n_embd=N_EMBD,
        n_positions=BLOCK,
        vocab_size=int(vocab),
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    model = GPT2LMHeadModel(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(0.2 * torch.randn_like(p))
    model.save_pretrained(directory, safe_serialization=True)
    print(json.dumps(report(model, text)))


def tokenize(directory, path):
    from transformers import AutoTokenizer, GPT2Tokenizer

    with open(path, encoding="utf-8") as f:
        text = f.read()
    fast = AutoTokenizer.from_pretrained(directory)
    slow = GPT2Tokenizer.from_pretrained(directory)
    ids = fast.encode(text)
    print(
        json.dumps(
            {
                "fast_class": type(fast).__name__,
                "fast": ids,
                "slow": slow.encode(text),
                "decoded": fast.decode(ids),
                "eos_token_id": fast.eos_token_id,
                "model_max_length": fast.model_max_length,
            }
        )
    )


def check(directory, text):
    model = GPT2LMHeadModel.from_pretrained(directory)
    print(json.dumps(report(model, text)))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(*sys.argv[2:])
    elif sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "tokenize":
        tokenize(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: hf_gpt2.py make DIR SEED TEXT [VOCAB] | check DIR TEXT | tokenize DIR FILE")
