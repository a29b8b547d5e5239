"""Writes parity.csv: sparse parity, a task known to generalise late (Barak et al. 2022).

Each row is 16 random bits b1..b16 and the label b1 XOR b5 XOR b11: only three inputs matter,
and nothing short of all three predicts the label better than chance. Deterministic (Python's
own Mersenne Twister, seed 0), so the file in the repository is exactly what this writes.

    python3 experiments/data/make_parity.py > experiments/data/parity.csv
"""

import random

BITS, RELEVANT, ROWS = 16, (0, 4, 10), 2000

rng = random.Random(0)
print(",".join([f"b{i + 1}" for i in range(BITS)] + ["label"]))
for _ in range(ROWS):
    bits = [rng.randint(0, 1) for _ in range(BITS)]
    label = sum(bits[i] for i in RELEVANT) % 2
    print(",".join(map(str, bits + [label])))
