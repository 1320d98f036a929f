"""torch.load(path, weights_only=True), summarised like pth_reader.py.

Runs in the torch venv `cargo xtask test` makes (NEURON_TEST_PYTHON_HF), beside the
independent stdlib reader.  usage: python torch_summary.py FILE OUT.json
"""
import collections
import hashlib
import json
import sys

import torch

obj = torch.load(sys.argv[1], weights_only=True)
leaves = {}


def walk(prefix, v):
    if isinstance(v, dict):
        leaves[prefix + "{}"] = {"kind": "ordered" if isinstance(v, collections.OrderedDict) else "dict", "keys": [str(k) for k in v]}
        for k, x in v.items():
            walk(f"{prefix}/{k}", x)
    elif isinstance(v, (list, tuple)):
        leaves[prefix + "[]"] = {"kind": type(v).__name__, "len": len(v)}
        for i, x in enumerate(v):
            walk(f"{prefix}/{i}", x)
    elif isinstance(v, torch.Tensor):
        raw = v.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        leaves[prefix] = {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape), "sha256": hashlib.sha256(raw).hexdigest()}
    else:
        leaves[prefix] = {"value": v}


walk("", obj)
with open(sys.argv[2], "w") as f:
    json.dump(leaves, f, sort_keys=True)
