"""The peer side of `ticketlab bench`: the same training step in PyTorch.

    BENCH_THREADS=T [BENCH_DEVICE=cuda] python torch_step.py MODEL STEPS WARMUP

BENCH_DEVICE is a torch device (default `cpu`): with `cuda` every tensor lives on the GPU and
each timed step ends when its loss is back on the host, as `ticketlab bench`'s steps do.

MODEL is one of `ticketlab bench --model`'s:
- mlp: the paper's MLP on (a+b) mod 67 (embedding 500, 48 ReLU neurons, output projection,
  unembedding, no biases), 911 training pairs, cross-entropy, AdamW(lr 1e-3, wd 1.0, betas
  0.9/0.98). The embedding is read with an index lookup.
- transformer: the paper code's 1-layer transformer on the same task (d_model 128, one head,
  d_mlp 128, causal attention, no LayerNorm, no positional embedding, logits at the last
  position), same loss and optimizer.
- mnist: the 784-200-200-10 MLP without biases (init scale 8) on the first 1,000 digits of
  data/mnist-10k, MSE against one-hot labels, AdamW(lr 1e-3, wd 0.1, betas 0.9/0.98).

Every step is full batch: forward, loss, backward and the optimizer update. Prints one JSON
object like `ticketlab bench --json`.
"""
import gzip
import json
import os
import random
import struct
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def modular_pairs(p: int = 67):
    pairs = [(i, j) for i in range(p) for j in range(i, p)]
    random.Random(0).shuffle(pairs)
    train = pairs[: int(0.4 * len(pairs))]
    a = torch.tensor([x for x, _ in train])
    b = torch.tensor([y for _, y in train])
    return a, b, (a + b) % p


def normal(*shape, fan_in, scale=1.0):
    return torch.nn.Parameter(torch.randn(*shape) * scale / fan_in**0.5)


def mlp():
    p, d_emb, width = 67, 500, 48
    a, b, y = modular_pairs(p)
    w_e, w_in = normal(d_emb, p, fan_in=p), normal(width, d_emb, fan_in=d_emb)
    w_out, w_u = normal(d_emb, width, fan_in=width), normal(d_emb, p, fan_in=d_emb)

    def loss():
        emb = w_e.T[a] + w_e.T[b]
        hidden = torch.relu(emb @ w_in.T)
        logits = (hidden @ w_out.T) @ w_u
        return torch.nn.functional.cross_entropy(logits, y)

    return [w_e, w_in, w_out, w_u], loss, 1.0


def transformer():
    p, d, d_mlp = 67, 128, 128
    a, b, y = modular_pairs(p)
    tokens = torch.stack([a, b], dim=1)  # [B, 2]
    w_e = normal(d, p, fan_in=p)
    w_q, w_k, w_v, w_o = (normal(d, d, fan_in=d) for _ in range(4))
    w_in, w_out = normal(d_mlp, d, fan_in=d), normal(d, d_mlp, fan_in=d_mlp)
    w_u = normal(d, p, fan_in=d)
    causal = torch.triu(torch.full((2, 2), -1e10), diagonal=1)

    def loss():
        resid = w_e.T[tokens]  # [B, 2, d]
        q, k, v = resid @ w_q.T, resid @ w_k.T, resid @ w_v.T
        scores = q @ k.transpose(1, 2) / d**0.5 + causal
        z = torch.softmax(scores, dim=-1) @ v
        resid = resid + z @ w_o.T
        resid = resid + torch.relu(resid @ w_in.T) @ w_out.T
        logits = resid[:, -1] @ w_u
        return torch.nn.functional.cross_entropy(logits, y)

    return [w_e, w_q, w_k, w_v, w_o, w_in, w_out, w_u], loss, 1.0


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4 : 4 + 4 * dims])
    return torch.frombuffer(bytearray(data[4 + 4 * dims :]), dtype=torch.uint8).reshape(shape)


def mnist():
    root = os.path.join(HERE, "..", "..", "data", "mnist-10k")
    digits = read_idx(os.path.join(root, "images-idx3-ubyte.gz"))[:1000].to(torch.get_default_device())
    x = digits.reshape(1000, 784).float() / 255.0
    labels = read_idx(os.path.join(root, "labels-idx1-ubyte.gz"))[:1000].long().to(torch.get_default_device())
    targets = torch.nn.functional.one_hot(labels, 10).float()
    w1, w2, w3 = normal(200, 784, fan_in=784, scale=8.0), normal(200, 200, fan_in=200, scale=8.0), normal(10, 200, fan_in=200, scale=8.0)

    def loss():
        out = torch.relu(torch.relu(x @ w1.T) @ w2.T) @ w3.T
        return torch.nn.functional.mse_loss(out, targets)

    return [w1, w2, w3], loss, 0.1


def main() -> None:
    model = sys.argv[1] if len(sys.argv) > 1 else "mlp"
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    warmup = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    threads = int(os.environ.get("BENCH_THREADS", "2"))
    device = os.environ.get("BENCH_DEVICE", "cpu")
    torch.set_num_threads(threads)
    # Every tensor the models make, data and weights, is made on this device.
    torch.set_default_device(device)
    torch.manual_seed(0)
    params, loss_fn, weight_decay = {"mlp": mlp, "transformer": transformer, "mnist": mnist}[model]()
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=weight_decay, betas=(0.9, 0.98))

    def step() -> float:
        loss = loss_fn()
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
        "model": model,
        "threads": threads,
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else device,
        "steps": steps,
        "ms_per_step_median": times[len(times) // 2],
        "ms_per_step_min": times[0],
        "final_loss": loss,
    }))


if __name__ == "__main__":
    main()
