"""Reads a run directory with TensorBoard's own event reader.

usage: python tb_scalars.py RUN_DIR OUT.json
Writes {tag: [[step, value], ...]} for every scalar TensorBoard finds.
"""
import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
acc.Reload()
out = {tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
with open(sys.argv[2], "w") as f:
    json.dump(out, f)
