#!/usr/bin/python3
"""Data-parallel figures for docs/distributed.md, measured on this machine.

1. One process with 2 threads against 2 MPI ranks with 1 thread each
   (shared memory), Fashion-MNIST, batch 64 and 256: samples/s and the time
   per step spent waiting for the gradient all-reduce; rounds interleaved,
   medians reported.
2. With --network (root, iproute2): 2 ranks in two network namespaces joined
   by a veth pair, Open MPI over TCP, the link limited by a token bucket
   (tc tbf) to 10 Gb/s and 1 Gb/s: all-reduce times (for the cost model's
   alpha and bandwidth) and training throughput.

    /usr/bin/python3 tools/dist_bench.py [--rounds 5] [--network] [--limit N]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build/release/tools/tapegrad")
ALLREDUCE = os.path.join(ROOT, "build/release/tools/allreduce_bench")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_btl_vader_single_copy_mechanism="none")


def train(prefix, batch, threads, limit, out):
    cmd = prefix + [BIN, "train", "--epochs", "1", "--batch-size", str(batch), "--threads",
                    str(threads), "--no-plot", "--no-graph", "--quiet", "--out", out]
    if limit:
        cmd += ["--limit", str(limit)]
    subprocess.run(cmd, env=ENV, check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(out, "summary.json")) as f:
        s = json.load(f)
    return s["samples_per_second"], s["allreduce_wait_ms_per_step"]


def local(rounds, limit, work):
    configs = [("1 process x 2 threads", [], 2), ("2 ranks x 1 thread", ["mpirun", "--oversubscribe", "-np", "2"], 1)]
    print(f"## shared memory, Fashion-MNIST, 1 epoch{f' of {limit} samples' if limit else ''}, "
          f"{rounds} interleaved rounds (median)")
    print("| batch | configuration | samples/s | all-reduce wait, ms/step |")
    print("|---|---|---|---|")
    for batch in (64, 256):
        res = {name: [] for name, _, _ in configs}
        for _ in range(rounds):
            for name, prefix, threads in configs:
                res[name].append(train(prefix, batch, threads, limit, os.path.join(work, "local")))
        for name, _, _ in configs:
            sps = statistics.median(r[0] for r in res[name])
            wait = statistics.median(r[1] for r in res[name])
            print(f"| {batch} | {name} | {sps:,.0f} | {wait:.3f} |")
    sys.stdout.flush()


def sh(*args, check=True):
    r = subprocess.run(list(args), capture_output=True, text=True, env=ENV)
    if check and r.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{r.stdout}{r.stderr}")
    return r


def network(rounds, limit, work):
    ns = ("tgbench-a", "tgbench-b")
    ips = ("10.78.0.1", "10.78.0.2")
    devs = ("tgbv-a", "tgbv-b")
    agent = os.path.join(work, "nsagent.sh")
    with open(agent, "w") as f:
        f.write("#!/bin/sh\n# Open MPI's remote shell: run the command in the namespace of the host\n"
                f'host=$1; shift\ncase "$host" in {ips[0]}) ns={ns[0]} ;; {ips[1]}) ns={ns[1]} ;; '
                '*) echo "unknown host $host" >&2; exit 1 ;; esac\n'
                'exec ip netns exec $ns /bin/sh -c "$*"\n')
    os.chmod(agent, 0o755)
    hostfile = os.path.join(work, "hosts")
    with open(hostfile, "w") as f:
        f.write(f"{ips[0]} slots=1\n{ips[1]} slots=1\n")
    for n in ns:
        sh("ip", "netns", "del", n, check=False)
    try:
        for n in ns:
            sh("ip", "netns", "add", n)
        sh("ip", "link", "add", devs[0], "type", "veth", "peer", "name", devs[1])
        for n, d, ip in zip(ns, devs, ips):
            sh("ip", "link", "set", d, "netns", n)
            sh("ip", "-n", n, "addr", "add", f"{ip}/24", "dev", d)
            sh("ip", "-n", n, "link", "set", d, "up")
            sh("ip", "-n", n, "link", "set", "lo", "up")
        mpirun = ["ip", "netns", "exec", ns[0], "mpirun", "--hostfile", hostfile, "-np", "2",
                  "--mca", "plm_rsh_agent", agent, "--mca", "btl", "tcp,self",
                  "--mca", "btl_tcp_if_include", "10.78.0.0/24", "--mca", "oob_tcp_if_include",
                  "10.78.0.0/24"]
        netem = sh("ip", "netns", "exec", ns[0], "tc", "qdisc", "add", "dev", devs[0], "root",
                   "netem", "delay", "50us", check=False)
        if netem.returncode != 0:
            print(f"note: tc netem is not available here ({netem.stderr.strip()}): no added "
                  "delay; the veth's own latency is measured instead")
        else:
            sh("ip", "netns", "exec", ns[0], "tc", "qdisc", "del", "dev", devs[0], "root")
        print(f"\n## 2 ranks in two network namespaces over TCP (veth), 1 thread each, "
              f"{rounds} rounds (median)")
        for rate, burst in ((None, None), ("10gbit", "2mb"), ("1gbit", "256kb")):
            for n, d in zip(ns, devs):
                sh("ip", "netns", "exec", n, "tc", "qdisc", "del", "dev", d, "root", check=False)
                if rate:
                    sh("ip", "netns", "exec", n, "tc", "qdisc", "add", "dev", d, "root", "tbf",
                       "rate", rate, "burst", burst, "latency", "100ms")
            label = rate or "veth, no limit"
            out = sh(*mpirun, ALLREDUCE, "--json")
            rows = [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]
            print(f"\n### link: {label}")
            print("all-reduce of float32, 2 ranks: " + ", ".join(
                f"{int(r['bytes'])} B {1e6 * r['seconds']:.1f} us" for r in rows))
            print("| batch | samples/s | all-reduce wait, ms/step |")
            print("|---|---|---|")
            for batch in (64, 256):
                res = [train(mpirun, batch, 1, limit, os.path.join(work, "net")) for _ in range(rounds)]
                print(f"| {batch} | {statistics.median(r[0] for r in res):,.0f} | "
                      f"{statistics.median(r[1] for r in res):.3f} |")
            sys.stdout.flush()
    finally:
        for n in ns:
            sh("ip", "netns", "del", n, check=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--network", action="store_true", help="also the namespaces over TCP (root)")
    ap.add_argument("--limit", type=int, default=0, help="training samples per epoch (0: all 60,000)")
    ap.add_argument("--net-limit", type=int, default=12800,
                    help="training samples per epoch over the limited links")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tapegrad-dist-") as work:
        local(a.rounds, a.limit, work)
        if a.network:
            network(a.rounds, a.net_limit, work)


if __name__ == "__main__":
    main()
