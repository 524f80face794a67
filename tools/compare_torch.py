#!/usr/bin/env python3
"""Train the same 784-256-128-10 ReLU MLP on Fashion-MNIST with PyTorch and
with tapegrad, in one run, same data, batch size, optimiser and thread count,
and print seconds per epoch, samples/s and the ratio.

  /usr/bin/python3 tools/compare_torch.py [--batch 64] [--epochs 2] [--threads 2]
  /usr/bin/python3 tools/compare_torch.py --batch 1 --limit 3000   # per-step latency

Needs Debian's python3-torch (tools/deps.sh torch) and a built tapegrad
(build/release/tools/tapegrad by default, or --tapegrad PATH).
"""
import argparse
import gzip
import json
import os
import struct
import subprocess
import sys
import tempfile
import time

DATA = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, n = struct.unpack(">II", raw[:8])
    if magic == 0x803:
        rows, cols = struct.unpack(">II", raw[8:16])
        return raw[16:], (n, rows * cols)
    return raw[8:], (n,)


def torch_run(args):
    import torch
    torch.set_num_threads(args.threads)
    # tapegrad flushes denormal optimiser moments to zero; give PyTorch the same.
    torch.set_flush_denormal(True)
    torch.manual_seed(args.seed)
    xb, xs = read_idx(f"{DATA}/train-images-idx3-ubyte.gz")
    yb, _ = read_idx(f"{DATA}/train-labels-idx1-ubyte.gz")
    x = torch.frombuffer(bytearray(xb), dtype=torch.uint8).reshape(xs).float() / 255.0
    y = torch.frombuffer(bytearray(yb), dtype=torch.uint8).long()
    if args.limit:
        x, y = x[: args.limit], y[: args.limit]
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 128), torch.nn.ReLU(),
        torch.nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    epochs = []
    for epoch in range(args.epochs):
        perm = torch.randperm(x.shape[0])
        t0 = time.perf_counter()
        for i in range(0, x.shape[0], args.batch):
            idx = perm[i:i + args.batch]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
        epochs.append(time.perf_counter() - t0)
    return epochs, x.shape[0]


def tapegrad_run(args):
    with tempfile.TemporaryDirectory() as out:
        cmd = [args.tapegrad, "train", "--out", out, "--epochs", str(args.epochs), "--batch-size",
               str(args.batch), "--threads", str(args.threads), "--schedule", "constant", "--quiet",
               "--no-plot", "--no-graph", "--seed", str(args.seed)]
        if args.limit:
            cmd += ["--limit", str(args.limit)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        rows = open(os.path.join(out, "metrics.csv")).read().strip().splitlines()[1:]
        return [float(r.split(",")[4]) for r in rows]


def median(v):
    s = sorted(v)
    return s[len(s) // 2]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit", type=int, default=0, help="train on the first N samples only")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tapegrad", default=os.path.join(os.path.dirname(__file__), "..", "build", "release",
                                                      "tools", "tapegrad"))
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if not os.path.exists(args.tapegrad):
        sys.exit(f"compare_torch.py: {args.tapegrad} not found: build first (bash tools/test.sh)")
    import torch
    t_epochs, n = torch_run(args)
    g_epochs = tapegrad_run(args)
    t, g = median(t_epochs), median(g_epochs)
    res = {
        "batch": args.batch, "threads": args.threads, "samples": n, "epochs": args.epochs,
        "torch_version": torch.__version__,
        "torch_s_per_epoch": t, "tapegrad_s_per_epoch": g,
        "torch_samples_per_s": n / t, "tapegrad_samples_per_s": n / g,
        "speedup": t / g,
        "torch_us_per_step": 1e6 * t / ((n + args.batch - 1) // args.batch),
        "tapegrad_us_per_step": 1e6 * g / ((n + args.batch - 1) // args.batch),
    }
    if args.json:
        print(json.dumps(res, indent=2))
        return
    print(f"784-256-128-10 ReLU MLP, Adam, batch {args.batch}, {args.threads} threads, {n} samples, "
          f"median of {args.epochs} epochs (torch {torch.__version__})")
    print(f"  PyTorch : {t:8.3f} s/epoch  {n / t:10.0f} samples/s  {res['torch_us_per_step']:9.1f} us/step")
    print(f"  tapegrad: {g:8.3f} s/epoch  {n / g:10.0f} samples/s  {res['tapegrad_us_per_step']:9.1f} us/step")
    print(f"  speed-up: {t / g:.2f}x")


if __name__ == "__main__":
    main()
