#!/usr/bin/env python3
"""Differential testing against PyTorch: replays the random graphs written by
tapegrad_difftest in PyTorch (float64) and compares the value of the output,
the gradient of every input, the Hessian of the loss and the Jacobian of the
output with respect to all input elements
(torch.autograd.functional.hessian / jacobian), relative tolerance 1e-9.

  /usr/bin/python3 tools/difftest.py [--graphs 300] [--seed 1] [--bin build/release/tools/tapegrad_difftest]

Exits 1 on any mismatch and prints the smallest graph (fewest ops) that shows
it. Prints 'difftest: N passed, N failed'.
"""
import argparse
import json
import os
import subprocess
import sys

import torch

REL, ABS = 1e-9, 1e-12


# The C library's functions as tapegrad_difftest draws them (each on a
# transform that keeps its argument in the domain). hypot is written
# sqrt(a² + b²) above: torch.hypot has no second derivative.
MATH = {
    "sin": torch.sin, "cos": torch.cos, "atan": torch.atan, "asinh": torch.asinh,
    "erf": torch.erf, "erfc": torch.erfc,
    "tan_t": lambda a: torch.tan(torch.tanh(a)),
    "asin_t": lambda a: torch.asin(torch.tanh(a) * 0.9),
    "acos_t": lambda a: torch.acos(torch.tanh(a) * 0.9),
    "sinh_t": lambda a: torch.sinh(torch.tanh(a)),
    "cosh_t": lambda a: torch.cosh(torch.tanh(a)),
    "acosh_a": lambda a: torch.acosh(a.abs() + 1.5),
    "atanh_t": lambda a: torch.atanh(torch.tanh(a) * 0.9),
    "log1p_a": lambda a: torch.log1p(a.abs()),
    "expm1_t": lambda a: torch.expm1(torch.tanh(a)),
    "log2_a": lambda a: torch.log2(a.abs() + 0.5),
    "log10_a": lambda a: torch.log10(a.abs() + 0.5),
    "exp2_t": lambda a: torch.exp2(torch.tanh(a)),
    "cbrt_a": lambda a: torch.pow(a.abs() + 0.5, 1.0 / 3.0),
    "floor": torch.floor, "ceil": torch.ceil, "round": torch.round, "trunc": torch.trunc,
}


def build(g, xs=None):
    if xs is None:
        xs = [torch.tensor(i["values"], dtype=torch.float64).reshape(i["shape"]).requires_grad_(True)
              for i in g["inputs"]]
    nodes = list(xs)
    for op in g["ops"]:
        a, b = nodes[op["args"][0]], nodes[op["args"][1]]
        k, at = op["op"], op["attrs"]
        if k == "add": r = a + b
        elif k == "sub": r = a - b
        elif k == "mul": r = a * b
        elif k == "div_safe": r = a / (b.abs() + 0.5)
        elif k == "maximum": r = torch.maximum(a, b)
        elif k == "minimum": r = torch.minimum(a, b)
        elif k == "exp_safe": r = torch.exp(torch.tanh(a))
        elif k == "log_safe": r = torch.log(a.abs() + 0.5)
        elif k == "sqrt_safe": r = torch.sqrt(a.abs() + 0.5)
        elif k == "sigmoid": r = torch.sigmoid(a)
        elif k == "tanh": r = torch.tanh(a)
        elif k == "relu": r = torch.relu(a)
        elif k == "leaky_relu": r = torch.nn.functional.leaky_relu(a, 0.1)
        elif k == "pow3": r = a ** 3
        elif k == "sum_axis": r = a.sum(dim=at["axis"], keepdim=at["keepdims"])
        elif k == "mean_axis": r = a.mean(dim=at["axis"], keepdim=at["keepdims"])
        elif k == "max_axis": r = a.max(dim=at["axis"]).values
        elif k == "matmul": r = a @ b
        elif k == "transpose": r = a.transpose(-1, -2)
        elif k == "softmax": r = torch.softmax(a, dim=-1)
        elif k == "abs": r = a.abs()
        elif k == "neg": r = -a
        elif k in MATH: r = MATH[k](a)
        elif k == "atan2": r = torch.atan2(a, b)
        elif k == "hypot": r = torch.sqrt(a * a + b * b)
        elif k == "fmod_safe": r = torch.fmod(a, b.abs() + 0.5)
        else: raise ValueError("unknown op " + k)
        nodes.append(r)
    return xs, nodes[-1]


def close(a, b):
    return abs(a - b) <= REL * max(abs(a), abs(b)) + ABS


def check(g):
    xs, out = build(g)
    w = torch.tensor(g["weight"], dtype=torch.float64).reshape(out.shape)
    (out * w).sum().backward()
    problems = []
    got = out.detach().reshape(-1).tolist()
    if len(got) != len(g["value"]):
        return [f"output has {len(got)} elements in torch, {len(g['value'])} in tapegrad"]
    for i, (p, t) in enumerate(zip(got, g["value"])):
        if not close(p, t):
            problems.append(f"value[{i}]: torch {p!r}, tapegrad {t!r}")
    for k, x in enumerate(xs):
        tg = g["grads"][k]
        pg = x.grad.reshape(-1).tolist() if x.grad is not None else [0.0] * len(tg)
        for i, (p, t) in enumerate(zip(pg, tg)):
            if not close(p, t):
                problems.append(f"grad of input {k} [{i}]: torch {p!r}, tapegrad {t!r}")
    problems += second_order(g, w)
    return problems


def second_order(g, w):
    """Hessian of sum(out * w) and Jacobian of out, over the flattened inputs."""
    shapes = [i["shape"] for i in g["inputs"]]
    sizes = [max(1, int(torch.tensor(s).prod().item())) if s else 1 for s in shapes]
    flat = torch.tensor([v for i in g["inputs"] for v in i["values"]], dtype=torch.float64)

    def split(v):
        out, off = [], 0
        for s, n in zip(shapes, sizes):
            out.append(v[off:off + n].reshape(s))
            off += n
        return out

    def loss(v):
        return (build(g, split(v))[1] * w).sum()

    def output(v):
        return build(g, split(v))[1].reshape(-1)

    problems = []
    H = torch.autograd.functional.hessian(loss, flat).reshape(-1).tolist()
    J = torch.autograd.functional.jacobian(output, flat).reshape(-1).tolist()
    for name, want, got in (("hessian", H, g["hessian"]), ("jacobian", J, g["jacobian"])):
        if len(want) != len(got):
            problems.append(f"{name} has {len(want)} entries in torch, {len(got)} in tapegrad")
            continue
        for i, (p, t) in enumerate(zip(want, got)):
            if not close(p, t):
                problems.append(f"{name}[{i}]: torch {p!r}, tapegrad {t!r}")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--graphs", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-ops", type=int, default=8)
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "build", "release", "tools",
                                                  "tapegrad_difftest"))
    args = ap.parse_args()
    torch.set_default_dtype(torch.float64)
    lines = subprocess.run([args.bin, "--graphs", str(args.graphs), "--seed", str(args.seed), "--max-ops",
                            str(args.max_ops)], check=True, capture_output=True, text=True).stdout.splitlines()
    failures = []
    for line in lines:
        g = json.loads(line)
        p = check(g)
        if p:
            failures.append((len(g["ops"]), g, p))
    if failures:
        failures.sort(key=lambda f: f[0])
        n, g, p = failures[0]
        print(f"smallest mismatching graph (seed {g['seed']}, {n} ops):")
        print(json.dumps({"inputs": [i["shape"] for i in g["inputs"]], "ops": g["ops"]}, indent=1))
        print("\n".join(p[:10]))
    print(f"difftest: {len(lines) - len(failures)} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
