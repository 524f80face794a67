"""Function: a Python callable recorded once and replayed; jvp, vjp, jacobian,
hvp and hessian on recorded graphs."""
import inspect

import numpy as np
import pytest
import tapegrad as tg

from conftest import numeric_grad, ticks_during


def rosenbrock(v):
    x, y = v
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


def np_rosenbrock(v):
    return (1 - v[0]) ** 2 + 100 * (v[1] - v[0] ** 2) ** 2


def test_gradient_by_replay_matches_differences(rng):
    fn = tg.Function.record(rosenbrock, [1.5, 2.0])
    for _ in range(5):
        x = rng.normal(size=2)
        value, grad = fn.gradient(x)
        assert value == pytest.approx(np_rosenbrock(x))
        np.testing.assert_allclose(grad, numeric_grad(np_rosenbrock, x), rtol=1e-6, atol=1e-6)
        assert fn(x) == pytest.approx(value)


def test_batch_of_points_and_optimized_replay(rng):
    fn = tg.Function.record(rosenbrock, [1.5, 2.0])
    pts = rng.normal(size=(50, 2))
    values, grads = fn.gradient(pts)
    assert values.shape == (50,) and grads.shape == (50, 2)
    stats = fn.optimize()
    assert fn.optimized and stats["ops"] > 0
    v2, g2 = fn.gradient(pts)
    np.testing.assert_allclose(v2, values, rtol=1e-14)
    np.testing.assert_allclose(g2, grads, rtol=1e-12)


def test_hessian_hvp_jvp(rng):
    fn = tg.Function.record(rosenbrock, [1.5, 2.0])
    x = np.array([1.5, 2.0])
    H = fn.hessian(x)
    np.testing.assert_allclose(H, [[1902, -600], [-600, 200]])
    v = rng.normal(size=2)
    np.testing.assert_allclose(fn.hvp(x, v), H @ v)
    _, g = fn.gradient(x)
    assert fn.jvp(x, v) == pytest.approx(g @ v)


def branchy(v):
    x, y = v
    if x > y:  # recorded comparison
        return x * y
    return x + y


def test_branch_changed_names_the_python_line():
    fn = tg.Function.record(branchy, [2.0, 1.0])
    assert fn.gradient([3.0, 1.0])[0] == 3.0
    with pytest.raises(tg.BranchChanged) as info:
        fn.gradient([0.0, 1.0])
    line = inspect.getsourcelines(branchy)[1] + 2
    assert info.value.line == line
    assert info.value.file.endswith("test_function.py")
    assert f"test_function.py:{line}" in str(info.value)
    assert isinstance(info.value, tg.Error)


def test_record_errors_are_clear():
    with pytest.raises(TypeError, match="must return a Scalar"):
        tg.Function.record(lambda v: 1.0, [1.0])
    with pytest.raises(ValueError, match="expected 2 numbers, got 3"):
        tg.Function.record(rosenbrock, [1.0, 2.0]).gradient([1.0, 2.0, 3.0])
    with pytest.raises(ZeroDivisionError):  # the callable's own error passes through
        tg.Function.record(lambda v: 1 / 0, [1.0])
    with pytest.raises(TypeError, match="real numbers"):
        tg.Function.record(rosenbrock, [1.0, 2.0]).gradient(np.array(["a", "b"]))


def test_replay_releases_the_gil(rng):
    fn = tg.Function.record(lambda v: sum(tg.sin(a) * tg.cos(b) for a, b in zip(v, v[1:])),
                            list(rng.normal(size=200)))
    pts = rng.normal(size=(3000, 200))
    assert ticks_during(lambda: fn.gradient(pts)) > 100  # the thread ran while C++ replayed


def test_jvp_vjp_jacobian_against_numpy(rng):
    x0 = rng.normal(size=3)
    x = tg.tensor(x0.copy(), requires_grad=True)
    y = tg.tanh(x) * 2.0 + x * x
    J_exact = np.diag(2 * (1 - np.tanh(x0) ** 2) + 2 * x0)
    np.testing.assert_allclose(tg.jacobian(y, x), J_exact, atol=1e-12)
    np.testing.assert_allclose(tg.jacobian(y, x, mode="forward"), J_exact, atol=1e-12)
    v = rng.normal(size=3)
    np.testing.assert_allclose(tg.jvp(y, x, v), J_exact @ v, atol=1e-12)
    np.testing.assert_allclose(tg.vjp(y, x, v), v @ J_exact, atol=1e-12)
    with pytest.raises(ValueError, match="expected 3 numbers"):
        tg.jvp(y, x, np.ones(4))
    with pytest.raises(ValueError, match="mode"):
        tg.jacobian(y, x, mode="sideways")


def test_scalar_hessian_and_hvp():
    x, y = tg.Scalar(1.5), tg.Scalar(2.0)
    f = rosenbrock([x, y])
    np.testing.assert_allclose(tg.hessian(f, [x, y]), [[1902, -600], [-600, 200]])
    np.testing.assert_allclose(tg.hvp(f, [x, y], [1.0, 0.0]), [1902, -600])


def test_scalar_function_from_python():
    import math
    softplus = tg.ScalarFunction(
        "softplus", value=lambda x: math.log1p(math.exp(x)),
        derivative=lambda x, y: 1 / (1 + math.exp(-x)),
        second=lambda x, y: math.exp(-x) / (1 + math.exp(-x)) ** 2)
    assert softplus(0.0) == pytest.approx(math.log(2))
    x = tg.Scalar(0.3)
    y = softplus(x * 2.0)
    y.backward()
    assert y.op == "custom"
    assert x.grad == pytest.approx(2 / (1 + math.exp(-0.6)))
    assert tg.gradcheck(lambda v: softplus(v[0]) * v[1], [0.4, -1.2]).passed
    assert tg.gradcheck_order2(lambda v: softplus(v[0]) * v[1], [0.4, -1.2]).passed
    t = tg.tensor(np.array([0.0, 1.0]), requires_grad=True)
    softplus(t).sum().backward()
    np.testing.assert_allclose(t.grad, 1 / (1 + np.exp(-np.array([0.0, 1.0]))))
    # replayed without the GIL: the callbacks take it back
    fn = tg.Function.record(lambda v: softplus(v[0] * v[1]), [1.0, 2.0])
    _, g = fn.gradient([0.5, -1.0])
    s = 1 / (1 + math.exp(0.5))
    np.testing.assert_allclose(g, [s * -1.0, s * 0.5])
    H = fn.hessian([0.5, -1.0])
    assert H.shape == (2, 2) and H[0, 1] == pytest.approx(H[1, 0])
    # an error inside a callback comes out as itself
    bad = tg.ScalarFunction("bad", value=lambda x: 1 / 0 if x > 5 else x, derivative=lambda x, y: 1.0)
    with pytest.raises(ZeroDivisionError):
        bad(tg.Scalar(6.0))
    # without a second derivative, second order names the function
    first_only = tg.ScalarFunction("first_only", value=math.sin, derivative=lambda x, y: math.cos(x))
    z = tg.Scalar(0.2)
    with pytest.raises(tg.Error, match="first_only"):
        tg.hessian(first_only(z), [z])
