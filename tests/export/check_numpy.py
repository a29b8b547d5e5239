"""Reads what `ticketlab export` wrote with NumPy and the safetensors package (from PyPI), as a
user would: the names are the model's parameters, the shapes [out, in], the mask is 0 or 1 and
the exported weights are already masked.

    python tests/export/check_numpy.py TICKET.safetensors FINAL.npz
"""

import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

combined, single = sys.argv[1], sys.argv[2]

tensors = load_file(combined)
with safe_open(combined, framework="numpy") as f:
    meta = f.metadata()
names = sorted({k.split("/", 1)[1] for k in tensors})
for what in ("init", "final", "mask"):
    assert sorted(k.split("/", 1)[1] for k in tensors if k.startswith(what + "/")) == names, what
kept = total = 0
for name in names:
    mask = tensors["mask/" + name]
    assert mask.dtype == np.float32 and set(np.unique(mask)) <= {0.0, 1.0}, name
    for what in ("init", "final"):
        w = tensors[f"{what}/{name}"]
        assert w.shape == mask.shape, (what, name, w.shape, mask.shape)
        assert np.array_equal(w * mask, w), f"{what}/{name} is not masked"
    kept += int(mask.sum())
    total += mask.size

final = np.load(single)
assert sorted(final.files) == names, (final.files, names)
for name in names:
    assert np.array_equal(final[name], tensors["final/" + name]), name

print(f"ok: {len(names)} parameters of {meta['ticketlab.arm']} ({meta['ticketlab.architecture']}), density {kept / total:.3f}")
