#!/usr/bin/env python3
"""tapegrad from Python against PyTorch eager, side by side in one run.

Three measurements, each a median over interleaved rounds:

  ops       a micrograd-style MLP (2-16-16-1 on moons, hinge loss) built from
            scalars and differentiated, per recorded op: tapegrad Scalars
            against PyTorch 0-d float64 tensors with requires_grad.
  replay    the gradient of one Python function at many new points:
            tapegrad's Function (recorded once, replayed) against PyTorch
            eager running the same function and backward at every point.
  train     one epoch of the 784-256-128-10 Fashion-MNIST MLP trained from
            Python on NumPy arrays (nn.Trainer), against `tapegrad train` with
            the same recipe.

PyTorch runs in each of its configurations (threads, allocator) (a fresh process each, as
its thread pools read their settings once) and every ratio is taken against
its fastest one in this run.

  PYTHONPATH=build/release/python /usr/bin/python3 tools/bench/python_bench.py
  ... --only ops,replay --rounds 5
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# glibc's malloc against tcmalloc (Debian's libtcmalloc-minimal4, installed by
# tools/deps.sh torch): small-tensor eager code allocates on every op.
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
TORCH_CONFIGS = {  # name -> environment
    "default": {},
    "threads1": {"OMP_NUM_THREADS": "1", "TORCH_THREADS": "1"},
    "threads2": {"OMP_NUM_THREADS": "2", "TORCH_THREADS": "2"},
}
if os.path.exists(TCMALLOC):
    TORCH_CONFIGS["tcmalloc1"] = {"OMP_NUM_THREADS": "1", "TORCH_THREADS": "1", "LD_PRELOAD": TCMALLOC}


# ---- the workloads (run inside a child process) ----

def moons_points(n):
    import numpy as np
    rng = np.random.default_rng(0)
    t = rng.uniform(0, np.pi, n)
    upper = rng.random(n) < 0.5
    x = np.where(upper, np.cos(t), 1 - np.cos(t))
    y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
    pts = np.stack([x, y], 1) + rng.normal(0, 0.1, (n, 2))
    return pts.tolist(), [1.0 if u else -1.0 for u in upper]


def mlp_step(lib, params, X, Y, act, relu):
    """One micrograd-style step: forward over every point, hinge loss, backward.
    `params` is a flat list (w then b per neuron) of 2-16-16-1."""
    sizes = [2, 16, 16, 1]
    total = 0.0
    for x, y in zip(X, Y):
        h = x
        k = 0
        for li in range(3):
            out = []
            for _ in range(sizes[li + 1]):
                s = params[k + sizes[li]]
                for i in range(sizes[li]):
                    s = s + params[k + i] * h[i]
                k += sizes[li] + 1
                out.append(relu(s) if li < 2 else s)
            h = out
        total = total + relu(1.0 + (-y) * h[0])
    return total * (1.0 / len(X))


def count_params():
    sizes = [2, 16, 16, 1]
    return sum((sizes[i] + 1) * sizes[i + 1] for i in range(3))


def ops_per_step(n_points):
    sizes = [2, 16, 16, 1]
    per_point = sum(sizes[i + 1] * (2 * sizes[i] + 1) for i in range(3)) + 16 + 16 + 3
    return n_points * per_point + n_points + 1


def run_ops(which, reps=5, n_points=16):
    import random
    X, Y = moons_points(n_points)
    rnd = random.Random(1)
    init = [rnd.uniform(-1, 1) for _ in range(count_params())]
    times = []
    if which == "tapegrad":
        import tapegrad as tg
        for _ in range(reps):
            t0 = time.perf_counter()
            params = [tg.Scalar(v) for v in init]
            loss = mlp_step(tg, params, X, Y, None, tg.relu)
            loss.backward()
            _ = [p.grad for p in params]
            times.append(time.perf_counter() - t0)
            del loss, params
    else:
        import torch
        if os.environ.get("TORCH_THREADS"):
            torch.set_num_threads(int(os.environ["TORCH_THREADS"]))
        for _ in range(reps):
            t0 = time.perf_counter()
            params = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in init]
            loss = mlp_step(torch, params, X, Y, None, torch.relu)
            loss.backward()
            _ = [p.grad.item() for p in params]
            times.append(time.perf_counter() - t0)
    return statistics.median(times) / ops_per_step(n_points) * 1e6  # microseconds per op


def replay_f(lib, v):
    # a chain of 100 inputs: smooth, branch-free
    s = 0.0
    for i in range(len(v) - 1):
        s = s + lib.sin(v[i]) * lib.cos(v[i + 1]) + (v[i] - v[i + 1]) ** 2
    return s


def run_replay(which, points=200, n=100):
    import numpy as np
    rng = np.random.default_rng(2)
    P = rng.normal(size=(points, n))
    if which == "tapegrad":
        import tapegrad as tg
        t0 = time.perf_counter()
        fn = tg.Function.record(lambda v: replay_f(tg, v), P[0])
        fn.optimize()
        t_record = time.perf_counter() - t0
        t0 = time.perf_counter()
        fn.gradient(P)
        return (time.perf_counter() - t0) / points * 1e6, t_record * 1e6
    import torch
    if os.environ.get("TORCH_THREADS"):
        torch.set_num_threads(int(os.environ["TORCH_THREADS"]))
    t0 = time.perf_counter()
    for p in P:
        x = torch.tensor(p, requires_grad=True)
        out = replay_f(torch, list(x.unbind()))
        g, = torch.autograd.grad(out, x)
    return (time.perf_counter() - t0) / points * 1e6, 0.0


def run_train(epochs=3, limit=60000):
    import tapegrad as tg  # noqa: F401
    from tapegrad import nn
    train = nn.fashion_mnist(train=True)
    test = nn.fashion_mnist(train=False)
    x, y = train.x[:limit].copy(), train.y[:limit].copy()  # plain NumPy arrays
    model = nn.MLP([784, 256, 128, 10], seed=1)
    tr = nn.Trainer(model, nn.Adam(model.parameters(), lr=1e-3), epochs=epochs, batch_size=64,
                    seed=1, schedule="cosine", replicas=1)
    hist = tr.fit((x, y), test=(test.x.copy(), test.y.copy()))
    return statistics.median(m["seconds"] for m in hist)


def child(args):
    kind, which = args.child.split(":")
    if kind == "ops":
        out = run_ops(which)
    elif kind == "replay":
        out = run_replay(which)
    else:
        out = run_train()
    print(json.dumps(out))


# ---- the driver ----

def spawn(kind, which, env_extra):
    env = dict(os.environ)
    env.update(env_extra)
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", f"{kind}:{which}"],
                       env=env, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        sys.exit(f"python_bench: {kind}:{which} failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def cli_epoch(tapegrad_bin, epochs=3, limit=60000):
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([tapegrad_bin, "train", "--epochs", str(epochs), "--limit", str(limit), "--replicas", "1",
                        "--quiet", "--no-plot", "--no-graph", "--no-report", "--out", out],
                       check=True, capture_output=True)
        with open(os.path.join(out, "metrics.csv")) as f:
            rows = [line.split(",") for line in f.read().splitlines()[1:]]
    return statistics.median(float(r[4]) for r in rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="ops,replay,train")
    ap.add_argument("--tapegrad", default=os.path.join(ROOT, "build/release/tools/tapegrad"))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    only = args.only.split(",")
    res = {}
    for r in range(args.rounds):
        for kind in [k for k in ("ops", "replay") if k in only]:
            res.setdefault((kind, "tapegrad"), []).append(spawn(kind, "tapegrad", {}))
            for name, env in TORCH_CONFIGS.items():
                res.setdefault((kind, "torch:" + name), []).append(spawn(kind, "torch", env))
        if "train" in only:
            res.setdefault(("train", "python"), []).append(spawn("train", "tapegrad", {}))
            res.setdefault(("train", "cli"), []).append(cli_epoch(args.tapegrad))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

    def med(key, i=None):
        vals = res[key] if i is None else [v[i] for v in res[key]]
        return statistics.median(vals)

    if "ops" in only:
        tg_us = med(("ops", "tapegrad"))
        best = min(TORCH_CONFIGS, key=lambda n: med(("ops", "torch:" + n)))
        print(f"\nops: micrograd-style MLP 2-16-16-1, 16 moons points per step ({ops_per_step(16)} ops)")
        print(f"  tapegrad Scalar          {tg_us:7.3f} us/op")
        for n in TORCH_CONFIGS:
            print(f"  PyTorch 0-d ({n:9s}) {med(('ops', 'torch:' + n)):7.3f} us/op")
        t_us = med(("ops", "torch:" + best))
        print(f"  tapegrad / PyTorch best ({best}): {tg_us / t_us:.3f}  (target <= 0.333)")
    if "replay" in only:
        tg_us = med(("replay", "tapegrad"), 0)
        rec = med(("replay", "tapegrad"), 1)
        best = min(TORCH_CONFIGS, key=lambda n: med(("replay", "torch:" + n), 0))
        t_us = med(("replay", "torch:" + best), 0)
        print("\nreplay: gradient of a 100-input Python function at 200 new points")
        print(f"  tapegrad Function.gradient   {tg_us:9.2f} us/point   (recording + optimize once: {rec:.0f} us)")
        for n in TORCH_CONFIGS:
            print(f"  PyTorch eager ({n:9s})    {med(('replay', 'torch:' + n), 0):9.2f} us/point")
        print(f"  speed-up over PyTorch best ({best}): {t_us / tg_us:.1f}x  (target >= 50x)")
    if "train" in only:
        py_s, cli_s = med(("train", "python")), med(("train", "cli"))
        print("\ntrain: Fashion-MNIST 784-256-128-10, Adam, batch 64, 60,000 samples per epoch (median of 3 epochs)")
        print(f"  nn.Trainer from Python (NumPy arrays)  {py_s:.4f} s/epoch")
        print(f"  tapegrad train (CLI)                   {cli_s:.4f} s/epoch")
        print(f"  Python / CLI: {py_s / cli_s:.3f}  (target <= 1.1)")


if __name__ == "__main__":
    main()
