"""Writes tests/fixtures/checkpoints/torch_written.pth with real PyTorch.

The file checks that a checkpoint written by PyTorch loads in the host. It is
generated once (PyTorch is too large for CI) and committed; rerun this with
any PyTorch to regenerate it:  python tests/python/make_torch_fixture.py
"""
import collections
import os

import torch

here = os.path.dirname(os.path.abspath(__file__))
path = os.path.join(here, "..", "fixtures", "checkpoints", "torch_written.pth")

base = torch.arange(24, dtype=torch.float32) / 8.0
model = collections.OrderedDict()
model["transformer.wte.weight"] = base.reshape(4, 6)
# Two views of one storage: the reader must honour storage offsets.
shared = torch.arange(10, dtype=torch.float32)
model["view.a"] = shared[2:6]
model["view.b"] = shared[6:10]
model["counts"] = torch.tensor([1, -2, 3], dtype=torch.int64)
model["mask"] = torch.tensor([True, False, True], dtype=torch.bool)
model["half"] = torch.tensor([0.5, -1.25], dtype=torch.float16)
state = {
    "model": model,
    "optimizer": {"transformer.wte.weight.exp_avg": torch.zeros(4, 6), "step": torch.tensor(7)},
    "scheduler": {"lr": 3e-4, "warmup_steps": 100, "decay_steps": 5000},
    "global_step": 1234,
    "plugin": {"name": "gpt", "version": "0.1.0"},
    "note": "written by torch " + torch.__version__,
}
torch.save(state, path)
print("wrote", path)
