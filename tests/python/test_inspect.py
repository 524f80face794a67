"""Proving and seeing: gradcheck, check_nodes, DOT, traces and the explorer."""
import numpy as np
import pytest
import tapegrad as tg


def test_gradcheck_tensor_and_scalar_forms(rng):
    r = tg.gradcheck(lambda xs: tg.tanh(xs[0] @ xs[1]).sum(), [rng.normal(size=(2, 3)), rng.normal(size=(3, 2))])
    assert r and r.passed and len(r.inputs) == 2
    assert "x0" in str(r) and "pass" in str(r)
    s = tg.gradcheck(lambda v: tg.exp(v[0]) * tg.sin(v[1]), [0.3, 1.1])
    assert s.passed
    assert tg.gradcheck_order2(lambda v: tg.exp(v[0]) * tg.sin(v[1]), [0.3, 1.1]).passed


def test_gradcheck_flags_a_kink_step():
    # abs at 0 with a step across the kink: the difference quotient is 0,
    # the rule gives 0 as well; at 1e-9 the difference straddles the kink
    # and disagrees with the rule's slope of 1.
    r = tg.gradcheck(lambda v: tg.abs(v[0]), [1e-9], eps=1e-6)
    assert not r.passed
    assert "FAIL" in str(r)


def test_gradcheck_rejects_bad_callables():
    with pytest.raises(TypeError, match="must return a Tensor"):
        tg.gradcheck(lambda xs: 3.0, [np.ones(2)])
    with pytest.raises(TypeError, match="non-empty list"):
        tg.gradcheck(lambda xs: xs[0], [])


def test_escaped_handle_from_a_lent_tape_raises():
    kept = []

    def f(xs):
        kept.append(xs[0])
        return tg.sum(xs[0] * xs[0])

    tg.gradcheck(f, [np.ones(2)])
    with pytest.raises(tg.Error, match="lent"):
        kept[0] * 2.0


def test_check_nodes_passes_and_names_lines():
    x = tg.tensor(np.array([0.5, -1.5]), requires_grad=True)
    y = tg.sigmoid(x * 3.0).sum()
    y.backward()
    r = tg.check_nodes(y)
    assert r.passed and r.first_failure is None
    assert any("test_inspect.py" in n.origin for n in r.nodes)


def test_dot_trace_and_explorer(tmp_path):
    a, b = tg.Scalar(2.0).named("a"), tg.Scalar(-3.0).named("b")
    c = (a * b + a).named("c")
    c.backward()
    dot = tg.to_dot(c, title="example")
    assert dot.startswith("digraph") and "example" in dot and "mul" in dot
    g = tg.draw(c)
    svg = g._repr_svg_()
    assert "<svg" in svg
    g.save(str(tmp_path / "g.svg"))
    assert (tmp_path / "g.svg").read_text().count("<svg") == 1
    tr = tg.trace(c)
    assert "grad_" in tr and "switches" in tr
    e = tg.explore(c)
    html = e._repr_html_()
    assert html.startswith("<iframe") and "srcdoc=" in html and "&lt;" in html
    tg.write_html(c, str(tmp_path / "c.html"))
    assert "<html" in (tmp_path / "c.html").read_text()
    e.save(str(tmp_path / "e.html"))
    assert (tmp_path / "e.html").read_text() == e.html


def test_explorer_save_to_a_bad_path_keeps_nothing_half_written(tmp_path):
    c = tg.Scalar(1.0) * 2.0
    with pytest.raises(tg.Error, match="cannot write"):
        tg.explore(c).save(str(tmp_path / "missing" / "x.html"))
