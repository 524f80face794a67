#!/usr/bin/env python3
"""Train the same 784-256-128-10 ReLU MLP on Fashion-MNIST with PyTorch and with
tapegrad, same data, batch size and optimiser, and compare seconds per epoch.

PyTorch is measured at its best: it runs in several thread configurations
(each in a fresh process, since OpenMP and OpenBLAS read their environment
once), interleaved with tapegrad over several rounds, and every ratio is taken
against the FASTEST PyTorch configuration of this run. tapegrad's figure is
also given as a multiple of the matrix-product floor (tools/bench
BM_MLPProductFloor: the step's products alone, same backend and threads).
Neither side gathers diagnostics: tapegrad runs with --no-report (the
training report's monitor copies every parameter at 8 steps per epoch, which
in the short epochs of --limit runs is several percent of the time).

  /usr/bin/python3 tools/compare_torch.py                      # batch 64, Adam
  /usr/bin/python3 tools/compare_torch.py --optimizer sgd      # plain SGD (no momentum)
  /usr/bin/python3 tools/compare_torch.py --batch 1 --limit 3000
  /usr/bin/python3 tools/compare_torch.py --list               # the PyTorch configurations

Needs Debian's python3-torch (tools/deps.sh torch) and a built tapegrad
(build/release/tools/tapegrad and build/release/tools/bench by default).
"""
import argparse
import gzip
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time

DATA = "/usr/share/datasets/fashion-mnist"
HERE = os.path.dirname(os.path.abspath(__file__))
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY",
               "GOMP_SPINCOUNT", "OPENBLAS_CORETYPE", "OMP_PROC_BIND", "LD_PRELOAD",
               "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")

# glibc returns every large freed block to the kernel and faults it back in on
# the next step: PyTorch allocates its activations anew each step, so here a
# quarter of its time went to page faults. Raising the thresholds (or using
# tcmalloc) keeps them; PyTorch's own CPU tuning guide recommends this.
KEEP_MEMORY = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "4294967296"}
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"

# name -> (environment, torch.set_num_threads argument or None, what it is)
TORCH_CONFIGS = {
    "default": ({}, None, "PyTorch as a user runs it: no settings at all"),
    "omp1-blas2": ({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "2"}, None,
                   "PyTorch's own ops on one thread, OpenBLAS on two"),
    "passive-2": ({"OMP_WAIT_POLICY": "PASSIVE"}, 2,
                  "set_num_threads(2) with passive OpenMP waiting (no spinning workers)"),
    "keep-mem": (dict(KEEP_MEMORY), None, "default threads, glibc keeps freed memory"),
    "keep-mem-1": (dict(KEEP_MEMORY, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1"), 1,
                   "one thread, glibc keeps freed memory"),
    "keep-mem-omp1-blas2": (dict(KEEP_MEMORY, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="2"), None,
                            "OpenBLAS on two threads, glibc keeps freed memory"),
    "keep-mem-1-skx": (dict(KEEP_MEMORY, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                            OPENBLAS_CORETYPE="SkylakeX"), 1,
                       "one thread, keeps memory, OpenBLAS forced to its AVX-512 kernels"),
    "tcmalloc-1": ({"LD_PRELOAD": TCMALLOC, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}, 1,
                   "one thread, tcmalloc (libtcmalloc-minimal4) instead of glibc malloc"),
}


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, n = struct.unpack(">II", raw[:8])
    if magic == 0x803:
        rows, cols = struct.unpack(">II", raw[8:16])
        return raw[16:], (n, rows * cols)
    return raw[8:], (n,)


def torch_worker(args):
    """Runs inside a child process whose environment holds one configuration."""
    import torch
    if args.set_threads:
        torch.set_num_threads(args.set_threads)
    # tapegrad flushes denormal optimiser state to zero; PyTorch gets the same.
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
    if args.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    loss_fn = torch.nn.CrossEntropyLoss()
    epochs = []
    for _ in range(args.epochs):
        perm = torch.randperm(x.shape[0])
        t0 = time.perf_counter()
        for i in range(0, x.shape[0], args.batch):
            idx = perm[i:i + args.batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
        epochs.append(time.perf_counter() - t0)
    print(json.dumps({"epochs": epochs, "samples": int(x.shape[0]),
                      "torch": torch.__version__, "threads": torch.get_num_threads()}))


def clean_env():
    env = dict(os.environ)
    for v in THREAD_VARS:
        env.pop(v, None)
    return env


def run_torch(name, args):
    env_extra, set_threads, _ = TORCH_CONFIGS[name]
    env = clean_env()
    env.update(env_extra)
    cmd = ["/usr/bin/python3", os.path.abspath(__file__), "--worker", "--batch", str(args.batch),
           "--epochs", str(args.epochs), "--limit", str(args.limit), "--seed", str(args.seed),
           "--optimizer", args.optimizer, "--lr", str(args.lr), "--momentum", str(args.momentum)]
    if set_threads:
        cmd += ["--set-threads", str(set_threads)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def tg_variant(v):
    """'2' -> (2, None): train's default update; '2f' -> (2, 'on'): --fused-update;
    '2u' -> (2, 'off'): --fused-update=off."""
    mode = {"f": "on", "u": "off"}.get(v[-1:])
    return int(v[:-1] if mode else v), mode


def tg_label(v):
    t, mode = tg_variant(v)
    return f"{t} thread{'s' if t > 1 else ''}{', fused' if mode == 'on' else ', unfused' if mode == 'off' else ''}"


def run_tapegrad(variant, args):
    threads, mode = tg_variant(variant)
    with tempfile.TemporaryDirectory() as out:
        cmd = [args.tapegrad, "train", "--out", out, "--epochs", str(args.epochs), "--batch-size",
               str(args.batch), "--threads", str(threads), "--schedule", "constant", "--quiet",
               "--no-plot", "--no-graph", "--no-report", "--seed", str(args.seed), "--optimizer", args.optimizer,
               "--lr", str(args.lr), "--momentum", str(args.momentum)]
        if args.limit:
            cmd += ["--limit", str(args.limit)]
        if mode:
            cmd += [f"--fused-update={mode}"]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=clean_env())
        rows = open(os.path.join(out, "metrics.csv")).read().strip().splitlines()[1:]
        return [float(r.split(",")[4]) for r in rows]


def product_floor(threads, args):
    """Median time of one step's matrix products (µs), from the benchmark."""
    if not os.path.exists(args.bench):
        return None
    cmd = [args.bench, f"--benchmark_filter=BM_MLPProductFloor/batch:{args.batch}/threads:{threads}$",
           "--benchmark_repetitions=5", "--benchmark_format=json", "--benchmark_min_time=0.2"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=clean_env()).stdout
    runs = [b for b in json.loads(out)["benchmarks"] if b.get("run_type") == "iteration"]
    if not runs:  # the batch size has no floor case in the benchmark
        return None
    return statistics.median(b["real_time"] for b in runs)  # microseconds


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--epochs", type=int, default=3,
                   help="epochs per process (the median over all of them passes over the first epochs, which hold one-time set-up)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds over all configurations")
    p.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    p.add_argument("--lr", type=float, default=None, help="default: 1e-3 for adam, 0.05 for sgd")
    p.add_argument("--momentum", type=float, default=0.0, help="sgd momentum (default 0: plain SGD)")
    p.add_argument("--limit", type=int, default=0, help="train on the first N samples only")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--configs", default=",".join(TORCH_CONFIGS), help="PyTorch configurations to run")
    p.add_argument("--tapegrad-threads", default="2,1",
                   help="tapegrad runs: thread counts, with f for --fused-update=on or u for "
                        "=off (e.g. 2,1,2f,2u); without either, train's default (auto)")
    p.add_argument("--tapegrad", default=os.path.join(HERE, "..", "build", "release", "tools", "tapegrad"))
    p.add_argument("--bench", default=os.path.join(HERE, "..", "build", "release", "tools", "bench"))
    p.add_argument("--json", action="store_true")
    p.add_argument("--list", action="store_true", help="list the PyTorch configurations and exit")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--set-threads", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.lr is None:
        args.lr = 1e-3 if args.optimizer == "adam" else 0.05
    if args.worker:
        return torch_worker(args)
    if args.list:
        for name, (env, st, what) in TORCH_CONFIGS.items():
            print(f"{name:20} {what}; env {env or '{}'}, set_num_threads {st}")
        return
    if "tcmalloc-1" in args.configs and not os.path.exists(TCMALLOC):
        args.configs = args.configs.replace("tcmalloc-1", "")
        print("compare_torch.py: libtcmalloc-minimal4 is not installed: skipping tcmalloc-1",
              file=sys.stderr)
    if not os.path.exists(args.tapegrad):
        sys.exit(f"compare_torch.py: {args.tapegrad} not found: build first (bash tools/test.sh)")
    configs = [c for c in args.configs.split(",") if c]
    for c in configs:
        if c not in TORCH_CONFIGS:
            sys.exit(f"compare_torch.py: unknown configuration '{c}' (see --list)")
    tg_threads = [t for t in args.tapegrad_threads.split(",") if t]
    for t in tg_threads:
        n = t[:-1] if t[-1:] in ("f", "u") else t
        if not n.isdigit() or int(n) < 1:
            sys.exit(f"compare_torch.py: bad --tapegrad-threads entry '{t}' (a thread count, "
                     "with f for --fused-update=on or u for =off)")

    torch_times = {c: [] for c in configs}
    tg_times = {t: [] for t in tg_threads}
    info = {}
    for r in range(args.rounds):  # interleaved: every configuration once per round
        for t in tg_threads:
            tg_times[t] += run_tapegrad(t, args)
        for c in configs:
            res = run_torch(c, args)
            torch_times[c] += res["epochs"]
            info = res
            print(f"round {r + 1}/{args.rounds}: {c} done", file=sys.stderr)
    n = info["samples"]
    steps = (n + args.batch - 1) // args.batch
    med_t = {c: statistics.median(v) for c, v in torch_times.items()}
    med_g = {t: statistics.median(v) for t, v in tg_times.items()}
    best_c = min(med_t, key=med_t.get)
    best_g = min(med_g, key=med_g.get)
    floors = {t: product_floor(tg_variant(t)[0], args) for t in tg_threads}
    res = {
        "batch": args.batch, "optimizer": args.optimizer, "lr": args.lr, "momentum": args.momentum,
        "samples": n, "epochs_per_process": args.epochs, "rounds": args.rounds,
        "torch_version": info["torch"],
        "torch_s_per_epoch": med_t, "tapegrad_s_per_epoch": med_g,
        "fastest_torch": best_c, "fastest_tapegrad_threads": best_g,
        "speedup_vs_fastest_torch": med_t[best_c] / med_g[best_g],
        "speedup_vs_default_torch": med_t["default"] / med_g[best_g] if "default" in med_t else None,
        "product_floor_us_per_step": floors,
        "tapegrad_x_floor": {t: (1e6 * med_g[t] / steps) / floors[t] if floors[t] else None
                             for t in tg_threads},
    }
    if args.json:
        print(json.dumps(res, indent=2))
        return
    opt = "Adam" if args.optimizer == "adam" else f"SGD (momentum {args.momentum})"
    print(f"784-256-128-10 ReLU MLP, {opt}, lr {args.lr}, batch {args.batch}, {n} samples; median of "
          f"{args.rounds} interleaved rounds x {args.epochs} epochs (torch {info['torch']})")
    print(f"  {'':33} {'s/epoch':>9} {'us/step':>9}  {'tapegrad is':>12}")
    for c in configs:
        mark = "  <- fastest PyTorch" if c == best_c else ""
        print(f"  PyTorch {c:25} {med_t[c]:9.3f} {1e6 * med_t[c] / steps:9.1f}  "
              f"{med_t[c] / med_g[best_g]:11.2f}x{mark}")
    for t in tg_threads:
        fl = floors[t]
        extra = f"  ({1e6 * med_g[t] / steps / fl:.2f}x the product floor of {fl:.1f} us)" if fl else ""
        print(f"  tapegrad {tg_label(t):24} {med_g[t]:9.3f} "
              f"{1e6 * med_g[t] / steps:9.1f}{extra}")
    print(f"  speed-up of tapegrad ({tg_label(best_g)}) against the fastest PyTorch ({best_c}): "
          f"{res['speedup_vs_fastest_torch']:.2f}x")


if __name__ == "__main__":
    main()
