"""The peer side of `ticketlab bench`: the same training step in PyTorch on the CPU.

The paper's MLP on (a+b) mod 67 (embedding 500, 48 ReLU neurons, output projection,
unembedding, no biases), full batch of 911 training pairs, cross-entropy, AdamW(lr 1e-3,
wd 1.0, betas 0.9/0.98). Prints one JSON object like `ticketlab bench`.
"""
import json
import os
import random
import sys
import time

import torch


def main() -> None:
    threads = int(os.environ.get("BENCH_THREADS", "2"))
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    warmup = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    p, d_emb, width = 67, 500, 48
    pairs = [(i, j) for i in range(p) for j in range(i, p)]
    random.Random(0).shuffle(pairs)
    train = pairs[: int(0.4 * len(pairs))]
    a = torch.tensor([x for x, _ in train])
    b = torch.tensor([y for _, y in train])
    y = (a + b) % p
    w_e = torch.nn.Parameter(torch.randn(d_emb, p) / p**0.5)
    w_in = torch.nn.Parameter(torch.randn(width, d_emb) / d_emb**0.5)
    w_out = torch.nn.Parameter(torch.randn(d_emb, width) / width**0.5)
    w_u = torch.nn.Parameter(torch.randn(d_emb, p) / d_emb**0.5)
    params = [w_e, w_in, w_out, w_u]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1.0, betas=(0.9, 0.98))

    def step() -> float:
        emb = w_e.T[a] + w_e.T[b]
        hidden = torch.relu(emb @ w_in.T)
        logits = (hidden @ w_out.T) @ w_u
        loss = torch.nn.functional.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(warmup):
        step()
    times = []
    loss = float("nan")
    for _ in range(steps):
        t = time.perf_counter()
        loss = step()
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    print(json.dumps({
        "peer": f"pytorch {torch.__version__}",
        "threads": threads,
        "steps": steps,
        "ms_per_step_median": times[len(times) // 2],
        "ms_per_step_min": times[0],
        "final_loss": loss,
    }))


if __name__ == "__main__":
    main()
