"""Scalars: the worked examples, every math function against finite differences,
comparisons, handles and tapes."""
import math

import numpy as np
import pytest
import tapegrad as tg

from conftest import numeric_grad


def test_worked_example_1_add_distributes_mul_switches():
    x, y, z = tg.Scalar(-2.0), tg.Scalar(5.0), tg.Scalar(-4.0)
    f = (x + y) * z
    f.backward()
    assert f.value == -12.0
    assert (x.grad, y.grad, z.grad) == (-4.0, -4.0, 3.0)


def test_worked_example_2_sigmoid_neuron():
    w0, x0, w1, x1, w2 = (tg.Scalar(v) for v in (2.0, -1.0, -3.0, -2.0, -3.0))
    f = tg.sigmoid(w0 * x0 + w1 * x1 + w2)
    f.backward()
    assert f.value == pytest.approx(0.731059, abs=1e-6)
    got = [w0.grad, x0.grad, w1.grad, x1.grad, w2.grad]
    want = [-0.196612, 0.393224, -0.393224, -0.589836, 0.196612]
    assert got == pytest.approx(want, abs=1e-6)


def test_worked_example_4_network_and_sgd_step():
    x1, x2 = 0.23, 0.82
    w = [tg.Scalar(v) for v in (0.1, 0.5, 0.4, 0.3, 0.2, 0.6)]
    ha = tg.sigmoid(x1 * w[0] + x2 * w[2])
    hb = tg.sigmoid(x1 * w[1] + x2 * w[3])
    y = tg.sigmoid(ha * w[4] + hb * w[5])
    E = 0.5 * (1.0 - y) ** 2
    E.backward()
    assert y.value == pytest.approx(0.615607, abs=1e-6)
    assert E.value == pytest.approx(0.073879, abs=1e-6)
    grads = [p.grad for p in w]
    assert grads == pytest.approx([-0.001014, -0.003038, -0.003617, -0.010831, -0.053381, -0.053602],
                                  abs=1e-6)
    for p in w:
        p.set_value(p.value - 0.7 * p.grad)
    assert [p.value for p in w] == pytest.approx(
        [0.100710, 0.502127, 0.402532, 0.307582, 0.237367, 0.637521], abs=1e-6)


def test_micrograd_readme_example():
    # micrograd's README example, written with tapegrad (relu for .relu()).
    a = tg.Scalar(-4.0)
    b = tg.Scalar(2.0)
    c = a + b
    d = a * b + b ** 3
    c = c + c + 1
    c = c + 1 + c + (-a)
    d = d + d * 2 + tg.relu(b + a)
    d = d + 3 * d + tg.relu(b - a)
    e = c - d
    f = e ** 2
    g = f / 2.0
    g = g + 10.0 / f
    g.backward()
    assert g.data == pytest.approx(24.7041, abs=1e-4)
    assert a.grad == pytest.approx(138.8338, abs=1e-4)
    assert b.grad == pytest.approx(645.5773, abs=1e-4)


UNARY = {  # function: a point inside its domain, away from kinks
    "exp": 0.3, "log": 1.7, "sqrt": 2.2, "abs": -0.8, "tanh": 0.4, "sigmoid": -0.6, "relu": 0.9,
    "sin": 0.7, "cos": 0.7, "tan": 0.5, "asin": 0.3, "acos": 0.3, "atan": 1.3, "sinh": 0.6,
    "cosh": 0.6, "asinh": 0.8, "acosh": 1.9, "atanh": 0.4, "erf": 0.5, "erfc": 0.5,
    "log1p": 0.9, "expm1": 0.4, "log2": 3.1, "log10": 3.1, "exp2": 0.7, "cbrt": 2.5,
    "floor": 1.3, "ceil": 1.3, "round": 1.3, "trunc": 1.3,
}
BINARY = {"pow": (1.3, 2.1), "max": (0.4, 1.1), "min": (0.4, 1.1), "atan2": (0.7, -1.2),
          "hypot": (1.5, -2.5), "fmod": (5.3, 1.7)}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_function_against_differences_and_math(name):
    fn = getattr(tg, name)
    x0 = UNARY[name]
    x = tg.Scalar(x0)
    y = fn(x)
    y.backward()
    plain = fn(x0)  # the same rule on a float
    assert y.value == pytest.approx(plain, rel=1e-15)
    if hasattr(math, name):
        assert y.value == pytest.approx(getattr(math, name)(x0), rel=1e-14)
    num = numeric_grad(lambda v: fn(float(v[0])), [x0])[0]
    assert x.grad == pytest.approx(num, abs=1e-7)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_function_against_differences(name):
    fn = getattr(tg, name)
    a0, b0 = BINARY[name]
    a, b = tg.Scalar(a0), tg.Scalar(b0)
    y = fn(a, b)
    y.backward()
    num = numeric_grad(lambda v: fn(float(v[0]), float(v[1])), [a0, b0])
    assert [a.grad, b.grad] == pytest.approx(list(num), abs=1e-7)
    # a plain number on either side rides on the node
    assert fn(a, b0).value == pytest.approx(y.value)
    assert fn(a0, b).value == pytest.approx(y.value)


def test_every_op_table_function_is_bound():
    for name in list(UNARY) + list(BINARY):
        assert callable(getattr(tg, name)), name


def test_fan_out_adds_up_and_max_routes():
    x = tg.Scalar(3.0)
    y = x * x + x  # x used three times
    y.backward()
    assert x.grad == 7.0
    a, b = tg.Scalar(1.0), tg.Scalar(2.0)
    m = tg.max(a, b)
    m.backward()
    assert (a.grad, b.grad) == (0.0, 1.0)


def test_reverse_operators_with_numbers():
    x = tg.Scalar(2.0)
    y = 1.0 - x + 3.0 * x - 8.0 / x + 2.0 ** x
    y.backward()
    assert y.value == pytest.approx(1 - 2 + 6 - 4 + 4)
    assert x.grad == pytest.approx(-1 + 3 + 8 / 4 + 4 * math.log(2))


def test_comparisons_return_bools_and_truth_value_is_refused():
    x, y = tg.Scalar(1.0), tg.Scalar(2.0)
    assert (x < y) is True and (x >= y) is False and (x == 1.0) is True and (x != y) is True
    with pytest.raises(TypeError, match="ambiguous"):
        bool(x)
    assert float(x) == 1.0
    assert len({x, y}) == 2  # hashable by identity


def test_gradients_accumulate_until_zero_grad():
    with tg.Tape() as t:
        x = tg.Scalar(2.0)
        y = x * x
        y.backward()
        y.backward()
        assert x.grad == 8.0
        t.zero_grad()
        assert x.grad == 0.0


def test_mixing_tapes_is_an_error():
    t1, t2 = tg.Tape(), tg.Tape()
    a = tg.Scalar(1.0, tape=t1)
    b = tg.Scalar(2.0, tape=t2)
    with pytest.raises(tg.Error, match="tape"):
        a + b


def test_stale_handle_after_clear_raises():
    t = tg.Tape()
    x = tg.Scalar(1.0, tape=t)
    keep = tg.Scalar(5.0, tape=t)
    t.clear()
    with pytest.raises(tg.Error, match="stale|cleared|rewound"):
        x + 1.0
    assert "stale" in repr(keep)


def test_with_block_makes_tape_current():
    t = tg.Tape()
    with t:
        x = tg.Scalar(3.0)
        assert x.tape is t
        assert tg.Tape.current() is t
    assert tg.Tape.current() is not t


def test_no_grad_records_constants():
    x = tg.Scalar(2.0)
    with tg.no_grad():
        y = x * 3.0
    assert y.op == "constant"


def test_mark_and_rewind():
    t = tg.Tape()
    w = tg.Scalar(0.5, tape=t)
    m = t.mark()
    for _ in range(3):
        loss = (w * 2.0 - 1.0) ** 2
        loss.backward()
        t.rewind(m)
    assert t.scalar_count == m.scalars
    assert w.grad == 0.0  # (0.5*2-1) = 0: zero gradient, but three sweeps ran


def test_anomaly_detection_names_the_python_line():
    x = tg.Scalar(-1.0)
    with tg.detect_anomaly():
        with pytest.raises(tg.AnomalyError) as info:
            tg.log(x) * 2.0  # NaN made here
    assert "test_scalar.py" in str(info.value)
    assert info.value.node.startswith("s")


def test_dropped_graphs_do_not_accumulate():
    t = tg.Tape()
    a = tg.Scalar(1.0, tape=t)
    for _ in range(20000):
        b = tg.Scalar(2.0, tape=t)
        c = tg.tanh(a * b + 1.0)
        c.backward()
    # a stays, each iteration's graph becomes garbage: compaction keeps it bounded
    assert t.compactions > 0
    assert t.scalar_count < 20000
    assert a.grad == pytest.approx(20000 * 2 * (1 - math.tanh(3.0) ** 2))
    assert c.value == pytest.approx(math.tanh(3.0))
