"""Differential tests against PyTorch float64 on random graphs: values, gradients
and Hessians, for Scalars, for Tensors and for replayed Functions."""
import numpy as np
import pytest
import tapegrad as tg

torch = pytest.importorskip("torch")
torch.set_default_dtype(torch.float64)

# (name, arity, torch function, domain guard applied to inputs)
OPS = [
    ("add", 2, lambda a, b: a + b), ("sub", 2, lambda a, b: a - b), ("mul", 2, lambda a, b: a * b),
    ("div", 2, lambda a, b: a / b), ("tanh", 1, torch.tanh), ("sigmoid", 1, torch.sigmoid),
    ("exp", 1, torch.exp), ("sin", 1, torch.sin), ("cos", 1, torch.cos), ("atan", 1, torch.atan),
    ("log", 1, torch.log), ("sqrt", 1, torch.sqrt), ("erf", 1, torch.erf), ("hypot", 2, torch.hypot),
    ("atan2", 2, torch.atan2), ("log1p", 1, torch.log1p), ("sinh", 1, torch.sinh),
]
TG = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
      "div": lambda a, b: a / b}


def tg_op(name):
    return TG.get(name) or getattr(tg, name)


def random_program(rng, n_in, n_ops):
    """A list of (op, operand indices) over values numbered from the inputs up.
    Positive-domain ops get a softplus-like guard: log(1 + exp(.)) + 0.5."""
    prog = []
    for k in range(n_ops):
        name, arity, _ = OPS[rng.integers(len(OPS))]
        args = tuple(int(rng.integers(n_in + k)) for _ in range(arity))
        prog.append((name, args))
    return prog


def run(prog, xs, lib):
    vals = list(xs)
    for name, args in prog:
        a = [vals[i] for i in args]
        if name in ("log", "sqrt", "log1p"):
            a = [lib["guard"](a[0])]
        if name == "div":
            a = [a[0], lib["guard"](a[1])]
        vals.append(lib["op"](name)(*a))
    # every value reaches the output, so no branch of the graph goes unchecked
    out = vals[len(xs)]
    for v in vals[len(xs) + 1:]:
        out = out + lib["squash"](v)
    return out


TG_LIB = {"op": tg_op, "guard": lambda v: tg.log(1.0 + tg.exp(v)) + 0.5, "squash": tg.tanh}
TORCH_LIB = {"op": lambda n: dict((o[0], o[2]) for o in OPS)[n],
             "guard": lambda v: torch.log(1.0 + torch.exp(v)) + 0.5, "squash": torch.tanh}


@pytest.mark.parametrize("seed", range(25))
def test_random_scalar_graphs_match_torch(seed):
    rng = np.random.default_rng(seed)
    n_in = int(rng.integers(1, 5))
    prog = random_program(rng, n_in, int(rng.integers(3, 15)))
    x0 = rng.uniform(-1.5, 1.5, size=n_in)

    with tg.Tape():
        xs = [tg.Scalar(float(v)) for v in x0]
        out = run(prog, xs, TG_LIB)
        out.backward()
        g = np.array([x.grad for x in xs])
        H = tg.hessian(out, xs)
        value = out.value

    xt = torch.tensor(x0, requires_grad=True)
    f = lambda v: run(prog, list(v), TORCH_LIB)  # noqa: E731
    ot = f(xt)
    gt, = torch.autograd.grad(ot, xt)
    Ht = torch.autograd.functional.hessian(f, torch.tensor(x0))
    assert value == pytest.approx(ot.item(), rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(g, gt.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(H, Ht.numpy(), rtol=1e-8, atol=1e-8)

    # the same program replayed at a new point
    fn = tg.Function.record(lambda v: run(prog, v, TG_LIB), x0)
    x1 = rng.uniform(-1.5, 1.5, size=n_in)
    v1, g1 = fn.gradient(x1)
    xt1 = torch.tensor(x1, requires_grad=True)
    o1 = f(xt1)
    g1t, = torch.autograd.grad(o1, xt1)
    assert v1 == pytest.approx(o1.item(), rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(g1, g1t.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(fn.hessian(x1), torch.autograd.functional.hessian(f, torch.tensor(x1)).numpy(),
                               rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("seed", range(8))
def test_random_tensor_networks_match_torch(seed):
    rng = np.random.default_rng(100 + seed)
    n, d, h, c = 5, int(rng.integers(2, 6)), int(rng.integers(2, 7)), 3
    X, W1, b1, W2 = rng.normal(size=(n, d)), rng.normal(size=(h, d)), rng.normal(size=h), rng.normal(size=(c, h))
    labels = rng.integers(0, c, size=n)
    acts = [(tg.tanh, torch.tanh), (tg.sigmoid, torch.sigmoid), (tg.relu, torch.relu), (tg.sin, torch.sin)]
    ta, pa = acts[seed % len(acts)]

    with tg.Tape():
        ps = [tg.tensor(v.copy(), requires_grad=True) for v in (W1, b1, W2)]
        z = ta(tg.linear(tg.tensor(X), ps[0], ps[1]))
        loss = tg.softmax_cross_entropy(z @ ps[2].T, labels) + 0.1 * (ps[2] * ps[2]).mean()
        loss.backward()
        grads = [p.grad.copy() for p in ps]
        value = loss.value.item()

    tp = [torch.tensor(v, requires_grad=True) for v in (W1, b1, W2)]
    zt = pa(torch.tensor(X) @ tp[0].T + tp[1])
    lt = torch.nn.functional.cross_entropy(zt @ tp[2].T, torch.tensor(labels)) + 0.1 * (tp[2] ** 2).mean()
    lt.backward()
    assert value == pytest.approx(lt.item(), rel=1e-12)
    for g, t in zip(grads, tp):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-10, atol=1e-12)
