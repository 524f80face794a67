"""Tensors: NumPy in and out (copies only where documented), ops against
differences, errors that name shapes and the Python line."""
import numpy as np
import pytest
import tapegrad as tg

from conftest import numeric_grad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_contiguous_arrays_are_used_in_place(dtype):
    a = np.arange(6, dtype=dtype).reshape(2, 3)
    t = tg.tensor(a, requires_grad=True)
    assert t.dtype == np.dtype(dtype) and t.shape == (2, 3)
    assert np.shares_memory(t.value, a)  # no copy in
    a[0, 0] = 42  # the leaf reads the array's memory
    assert t.value[0, 0] == 42
    (t * 2.0).sum().backward()
    g = t.grad
    assert g.dtype == np.dtype(dtype) and g.shape == (2, 3)
    np.testing.assert_array_equal(g, np.full((2, 3), 2, dtype=dtype))
    assert np.shares_memory(t.grad, g)  # the gradient array is the tensor's own, no copy out


def test_values_are_read_only_views():
    t = tg.tensor(np.ones(3))
    y = t * 3.0
    v = y.value
    assert not v.flags.writeable
    with pytest.raises(ValueError):
        v[0] = 1
    assert np.shares_memory(v, y.numpy())
    np.testing.assert_array_equal(np.asarray(y), [3, 3, 3])


def test_other_arrays_are_copied():
    base = np.arange(12.0).reshape(3, 4)
    strided = base[:, ::2]
    t = tg.tensor(strided)
    assert not np.shares_memory(t.value, base)
    np.testing.assert_array_equal(t.value, strided)
    ints = tg.tensor(np.array([1, 2, 3]))
    assert ints.dtype == np.float64
    from_list = tg.tensor([[1, 2], [3, 4]], dtype="float32")
    assert from_list.dtype == np.float32 and from_list.shape == (2, 2)
    # float64 data asked as float32: converted
    f32 = tg.tensor(np.ones(2), dtype=np.float32)
    assert f32.dtype == np.float32


@pytest.mark.parametrize("bad", [np.array([1 + 2j]), np.array(["a"]), np.array([object()])])
def test_wrong_dtypes_are_type_errors(bad):
    with pytest.raises(TypeError, match="dtype"):
        tg.tensor(bad)


def test_too_many_axes_is_a_clear_error():
    with pytest.raises(ValueError, match="at most 8"):
        tg.tensor(np.zeros((1,) * 9))


def test_shape_errors_name_op_shapes_and_line():
    a = tg.tensor(np.ones((2, 3)))
    b = tg.tensor(np.ones((4, 5)))
    with pytest.raises(tg.Error) as info:
        a @ b  # line of the error
    msg = str(info.value)
    assert "matmul" in msg and "(2x3)" in msg and "(4x5)" in msg
    with pytest.raises(tg.Error, match=r"\(2x3\).*\(4x5\)"):
        a + b


def test_wrong_argument_types_are_type_errors():
    with pytest.raises(TypeError):
        tg.exp("x")
    with pytest.raises(TypeError):
        tg.tensor(np.ones(2)) @ 3


def elementwise_cases():
    names = ["exp", "tanh", "sigmoid", "sin", "cos", "atan", "sinh", "erf", "log1p", "expm1",
             "cbrt", "abs", "relu"]
    return names


@pytest.mark.parametrize("name", elementwise_cases())
def test_elementwise_tensor_functions_match_scalars_and_differences(name, rng):
    fn = getattr(tg, name)
    x0 = rng.uniform(0.2, 1.5, size=(3, 4))
    x = tg.tensor(x0.copy(), requires_grad=True)
    y = fn(x)
    y.sum().backward()
    np.testing.assert_allclose(y.value, np.vectorize(lambda v: fn(float(v)))(x0), rtol=1e-15)
    num = numeric_grad(lambda v: np.sum(np.vectorize(lambda s: fn(float(s)))(v)), x0)
    np.testing.assert_allclose(x.grad, num, atol=1e-7)


def test_matmul_broadcast_reductions_against_differences(rng):
    A0, B0, c0 = rng.normal(size=(3, 4)), rng.normal(size=(4, 2)), rng.normal(size=(2,))

    def f(A, B, c):
        return (tg.tanh(A @ B + c) * 2.0 - 1.0).mean()

    A, B, c = (tg.tensor(v.copy(), requires_grad=True) for v in (A0, B0, c0))
    out = f(A, B, c)
    out.backward()
    np_f = lambda A_, B_, c_: np.mean(np.tanh(A_ @ B_ + c_) * 2 - 1)  # noqa: E731
    assert out.value == pytest.approx(np_f(A0, B0, c0))
    np.testing.assert_allclose(A.grad, numeric_grad(lambda v: np_f(v, B0, c0), A0), atol=1e-8)
    np.testing.assert_allclose(B.grad, numeric_grad(lambda v: np_f(A0, v, c0), B0), atol=1e-8)
    np.testing.assert_allclose(c.grad, numeric_grad(lambda v: np_f(A0, B0, v), c0), atol=1e-8)


def test_scalar_times_tensor_sends_gradient_to_both():
    s = tg.Scalar(3.0)
    x = tg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (s * x).sum() + (x * s).sum()
    y.backward()
    assert s.grad == 6.0
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])
    z = (x + s).sum()  # a Scalar broadcast through a rank-0 tensor
    z.backward()
    assert s.grad == 8.0


def test_shape_ops_and_losses(rng):
    x = tg.tensor(rng.normal(size=(4, 3)), requires_grad=True)
    assert x.T.shape == (3, 4)
    assert x.reshape(2, 6).shape == (2, 6)
    assert tg.slice_rows(x, 1, 3).shape == (2, 3)
    assert tg.concat([x, x], axis=1).shape == (4, 6)
    assert tg.max(x, 1).shape == (4,)
    loss = tg.softmax_cross_entropy(x, np.array([0, 2, 1, 1]))
    loss.backward()
    p = np.exp(x.value) / np.exp(x.value).sum(1, keepdims=True)
    onehot = np.eye(3)[[0, 2, 1, 1]]
    np.testing.assert_allclose(x.grad, (p - onehot) / 4, atol=1e-12)
    with pytest.raises(tg.Error, match="label 7 of row 0"):
        tg.softmax_cross_entropy(x, np.array([7, 0, 0, 0]))


def test_item_is_a_differentiable_scalar():
    x = tg.tensor(np.array([2.0]), requires_grad=True)
    s = x.item() * 3.0
    s.backward()
    np.testing.assert_array_equal(x.grad, [3.0])


def test_tensor_backward_needs_one_element_or_a_seed():
    x = tg.tensor(np.ones(3), requires_grad=True)
    y = x * 2.0
    with pytest.raises(tg.Error, match="shape"):
        y.backward()
    y.backward(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(x.grad, [2.0, 4.0, 6.0])


def test_memory_report_and_budget():
    t = tg.Tape()
    x = tg.tensor(np.ones((100, 100)), requires_grad=True, tape=t)
    y = (x * x).sum()
    m = t.memory()
    assert m["tensor_nodes"] == 3 and m["tensor_bytes"] >= 100 * 100 * 8
    t.memory_budget = m["held"] + 1000
    with pytest.raises(tg.Error, match="budget"):
        x * 2.0
    t.memory_budget = 0
    assert (x * 2.0).shape == (100, 100)  # the tape is usable after the error
    del y


def test_checkpointed_block_from_python(rng):
    W = rng.normal(size=(3, 4))
    x0 = rng.normal(size=(5, 3))
    runs = []

    def block(x):
        runs.append(1)
        return tg.tanh(x @ tg.tensor(W)) * 2.0

    x = tg.tensor(x0.copy(), requires_grad=True)
    y = tg.checkpoint(block, x)
    assert y.op == "checkpoint" and len(runs) == 1
    (tg.sigmoid(y)).sum().backward()
    assert len(runs) == 2  # recomputed in the sweep
    x_plain = tg.tensor(x0.copy(), requires_grad=True)
    y_plain = block(x_plain)
    (tg.sigmoid(y_plain)).sum().backward()
    np.testing.assert_array_equal(y.value, y_plain.value)
    np.testing.assert_array_equal(x.grad, x_plain.grad)
    with pytest.raises(TypeError, match="must return a Tensor"):
        tg.checkpoint(lambda t: 1.0, x)


def test_mlp_checkpoint_layers_same_gradients():
    from tapegrad import nn
    x = np.random.default_rng(3).normal(size=(32, 6)).astype(np.float32)
    labels = np.arange(32) % 3
    grads = []
    for ck in (False, True):
        model = nn.MLP([6, 16, 16, 3], seed=2, checkpoint_layers=ck)
        with tg.Tape():
            loss = nn.cross_entropy(model(tg.tensor(x)), labels)
            loss.backward()
        grads.append([p.grad.copy() for p in model.parameters()])
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)


def test_numpy_operators_keep_the_gradient_and_ufuncs_refuse():
    t = tg.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    for y in (np.float64(2.0) * t, np.full(3, 2.0) * t, t * np.full(3, 2.0)):
        assert isinstance(y, tg.Tensor)  # not a plain array that lost the tape
    (np.full(3, 2.0) * t).sum().backward()
    np.testing.assert_array_equal(t.grad, [2.0, 2.0, 2.0])
    with pytest.raises(TypeError, match="ufunc"):
        np.exp(t)  # tg.exp(t) records; NumPy's would silently drop the gradient


def test_threads_have_their_own_default_tape_and_may_end():
    import threading
    out = {}

    def work(k):
        a = np.full(4, float(k))
        t = tg.tensor(a, requires_grad=True)  # keeps `a` alive on this thread's tape
        (t * t).sum().backward()
        out[k] = (tg.Tape.current(), t.grad.copy())

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()  # each thread's default tape is released as it ends
    assert len({id(tp) for tp, _ in out.values()}) == 4
    for k, (_, g) in out.items():
        np.testing.assert_array_equal(g, np.full(4, 2.0 * k))
    x = tg.Scalar(1.0)
    with pytest.raises(tg.Error, match="thread"):
        out[0][0].variable(1.0)  # another thread's tape


def test_a_handle_dropped_on_another_thread():
    import threading
    t = tg.Tape()
    held = [tg.Scalar(1.0, tape=t) * 2.0, tg.tensor(np.ones(2), tape=t)]
    th = threading.Thread(target=held.clear)  # the last references go on another thread
    th.start()
    th.join()
    assert t.handles == 0
    x = tg.Scalar(3.0, tape=t)  # the tape is fine on its own thread
    (x * x).backward()
    assert x.grad == 6.0
