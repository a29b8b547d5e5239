"""Reads what `ticketlab export --tensorboard` wrote with TensorBoard itself (from PyPI), as a
user's `tensorboard --logdir` would: each run (folder) is one arm of summary.json, named in bold
at the head of its `grokking` text, every arm has one, its scalars equal metrics.jsonl step for
step (as float32), and its text names its t_gen. TensorBoard's reader checks each record's CRCs
and stops at the first bad one, so reading every value back checks them too.

    python tests/export/check_tensorboard.py RUN_DIR TENSORBOARD_DIR
"""

import json
import os
import sys

import numpy as np
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.util import tensor_util

run_dir, logdir = sys.argv[1], sys.argv[2]
summary = json.load(open(os.path.join(run_dir, "summary.json")))
metrics = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
tags = {
    "accuracy/train": lambda m: m["train_acc"],
    "accuracy/test": lambda m: m["test_acc"],
    "loss/train": lambda m: m["train_loss"],
    "loss/test": lambda m: m["test_loss"],
    "norm/l1": lambda m: m["norms"]["l1"],
    "norm/l2": lambda m: m["norms"]["l2"],
}
rows = {row["arm"]: row for row in summary["arms"]}
seen = set()
for folder in sorted(os.listdir(logdir)):
    acc = event_accumulator.EventAccumulator(
        os.path.join(logdir, folder),
        size_guidance={event_accumulator.SCALARS: 0, event_accumulator.TENSORS: 0},
    )
    acc.Reload()
    [text] = acc.Tensors("grokking")
    table = tensor_util.make_ndarray(text.tensor_proto).item().decode()
    arm = table.split("**")[1]
    assert arm in rows and arm not in seen, (folder, arm)
    seen.add(arm)
    row = rows[arm]
    mine = [m for m in metrics if m["arm"] == arm]
    assert mine, arm
    for tag, value in tags.items():
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [m["step"] for m in mine], (arm, tag)
        got = np.array([e.value for e in events], dtype=np.float32)
        want = np.array([value(m) for m in mine], dtype=np.float32)
        assert np.array_equal(got, want), (arm, tag, got[:3], want[:3])
    for layer in mine[0]["layers"]:
        assert len(acc.Scalars(f"layer_l2/{layer}")) == len(mine), (arm, layer)
    t_gen = "never" if row["t_gen"] is None else str(row["t_gen"])
    assert f"| t_gen | {t_gen} |" in table, (arm, table)
    assert text.step == row["steps"], (arm, text.step)
assert seen == set(rows), set(rows) - seen
print(f"ok: TensorBoard reads {len(summary['arms'])} arms of {summary['experiment']}")
