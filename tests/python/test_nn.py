"""nn from Python: parameters as views, the MLP trained from NumPy arrays by the
C++ trainer, Python callbacks, the GIL released during an epoch, checkpoints."""
import os

import numpy as np
import pytest
import tapegrad as tg
from tapegrad import nn

from conftest import ticks_during


def moons(n, seed):
    d = nn.make_moons(n, seed)
    return d.x.copy(), d.y.copy()


def test_parameters_are_writeable_views():
    model = nn.MLP([2, 3, 2], dtype="float64", seed=1)
    names = [n for n, _ in model.named_parameters()]
    assert names == ["layer0.weight", "layer0.bias", "layer1.weight", "layer1.bias"]
    w = model.parameters()[0]
    assert w.shape == (3, 2) and w.dtype == np.float64
    v = w.value
    v[...] = np.arange(6).reshape(3, 2)  # writes the model's memory (transposed storage too)
    x = tg.tensor(np.array([[1.0, 0.0]]))
    before = model(x).value.copy()
    v[0, 0] += 1.0
    after = model(x).value
    assert not np.allclose(before, after)
    assert model.parameter_count == 3 * 2 + 3 + 2 * 3 + 2


def test_manual_step_matches_sgd():
    model = nn.MLP([2, 4, 2], dtype="float64", seed=3)
    opt = nn.SGD(model.parameters(), lr=0.1)
    x, y = moons(16, 1)
    w0 = [p.value.copy() for p in model.parameters()]
    with tg.Tape():
        loss = nn.cross_entropy(model(tg.tensor(x.astype(np.float64))), y)
        opt.zero_grad()
        loss.backward()
        grads = [p.grad.copy() for p in model.parameters()]
        opt.step()
    for p, w, g in zip(model.parameters(), w0, grads):
        np.testing.assert_allclose(p.value, w - 0.1 * g, rtol=1e-12)


def test_trainer_learns_moons_from_numpy_with_callbacks():
    x, y = moons(1000, 7)
    xt, yt = moons(300, 8)
    model = nn.MLP([2, 16, 16, 2], seed=2)
    opt = nn.Adam(model.parameters(), lr=0.01)
    trainer = nn.Trainer(model, opt, epochs=8, batch_size=32)
    seen = {"steps": 0, "epochs": [], "begin": 0, "end": 0}

    class Counter:
        def on_fit_begin(self, t):
            seen["begin"] += 1
            assert t is trainer

        def on_step_end(self, t, s):
            seen["steps"] += 1
            assert s.loss > 0

        def on_epoch_end(self, t, m):
            seen["epochs"].append(m["epoch"])

        def on_fit_end(self, t):
            seen["end"] += 1

    hist = trainer.fit((x, y), test=(xt, yt), callbacks=[Counter()])
    assert [m["epoch"] for m in hist] == list(range(1, 9)) == seen["epochs"]
    assert seen["steps"] == 8 * ((1000 + 31) // 32)
    assert seen["begin"] == seen["end"] == 1
    assert hist[-1]["test_accuracy"] > 0.95
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    ev = trainer.evaluate((xt, yt))
    assert ev["accuracy"] == pytest.approx(hist[-1]["test_accuracy"])


def test_callback_errors_propagate_and_the_trainer_stays_usable():
    x, y = moons(200, 1)
    model = nn.MLP([2, 4, 2])
    trainer = nn.Trainer(model, nn.SGD(model.parameters(), lr=0.1), epochs=2, batch_size=50)

    class Boom:
        def on_step_end(self, t, s):
            raise KeyError("stop here")

    with pytest.raises(KeyError, match="stop here"):
        trainer.fit((x, y), callbacks=[Boom()])
    assert len(trainer.fit((x, y))) == 2  # the failed callback is gone


def test_an_epoch_releases_the_gil():
    x, y = moons(20000, 3)
    model = nn.MLP([2, 64, 64, 2])
    trainer = nn.Trainer(model, nn.SGD(model.parameters(), lr=0.05), epochs=1, batch_size=16)
    assert ticks_during(lambda: trainer.fit((x, y))) > 1000


def test_bad_data_gets_clear_errors():
    model = nn.MLP([2, 4, 2])
    trainer = nn.Trainer(model, nn.SGD(model.parameters()), epochs=1)
    with pytest.raises(ValueError, match="3 samples in x but 2 labels"):
        trainer.fit((np.zeros((3, 2)), np.array([0, 1])))
    with pytest.raises(TypeError, match="labels must be integers"):
        trainer.fit((np.zeros((2, 2)), np.array([0.5, 1.0])))
    with pytest.raises(ValueError, match="feature 1 of sample 0 is nan"):
        nn.Dataset(np.array([[0.0, np.nan]]), np.array([0]))
    with pytest.raises(tg.Error, match="features|shape|\\(2x4\\)"):
        trainer.fit((np.zeros((4, 3)), np.array([0, 1, 0, 1])))
    with pytest.raises(tg.Error, match="unknown activation|relu"):
        nn.MLP([2, 2], hidden="swish")


def test_progress_prints_like_the_cli(capsys):
    x, y = moons(200, 1)
    model = nn.MLP([2, 4, 2])
    nn.Trainer(model, nn.SGD(model.parameters(), lr=0.1), epochs=2, batch_size=50).fit(
        (x, y), test=(x, y), progress=True)
    out = capsys.readouterr()
    assert "epoch  1  train loss" in out.out and "test accuracy" in out.out
    assert "samples/s" in out.err


def test_checkpoint_round_trip_and_bad_file(tmp_path):
    model = nn.MLP([2, 3, 2], seed=1)
    path = str(tmp_path / "m.ckpt")
    model.save(path)
    other = nn.MLP([2, 3, 2], seed=9)
    other.load(path)
    for a, b in zip(model.parameters(), other.parameters()):
        np.testing.assert_array_equal(a.value, b.value)
    with open(path, "r+b") as f:
        f.seek(40)
        f.write(b"\xff\xff")
    before = [p.value.copy() for p in other.parameters()]
    with pytest.raises(tg.Error, match="m.ckpt"):
        other.load(path)
    for p, b in zip(other.parameters(), before):  # nothing changed
        np.testing.assert_array_equal(p.value, b)


FASHION = "/usr/share/datasets/fashion-mnist"


@pytest.mark.skipif(not os.path.isdir(FASHION), reason="Fashion-MNIST is installed by tools/deps.sh train")
def test_fashion_mnist_from_numpy_arrays():
    train = nn.fashion_mnist(train=True)
    x, y = train.x[:6000], train.y[:6000]
    test = nn.fashion_mnist(train=False)
    model = nn.MLP([784, 64, 10], seed=1)
    trainer = nn.Trainer(model, nn.Adam(model.parameters(), lr=1e-3), epochs=2, batch_size=64)
    hist = trainer.fit((x, y), test=(test.x[:2000], test.y[:2000]))
    assert hist[-1]["test_accuracy"] > 0.7


def test_training_report_from_python(tmp_path):
    x, y = moons(400, 5)
    model = nn.MLP([2, 8, 2], seed=4)
    trainer = nn.Trainer(model, nn.Adam(model.parameters(), lr=0.01), epochs=3, batch_size=40)
    monitor = nn.TrainingMonitor(samples_per_epoch=4)
    calls = []

    class After:
        def on_epoch_end(self, t, m):
            calls.append(monitor.measured_steps)  # the monitor ran before this callback

    trainer.fit((x, y), test=(x, y), callbacks=[monitor, After()])
    assert monitor.names == ["layer0.weight", "layer0.bias", "layer1.weight", "layer1.bias"]
    per = calls[0]  # steps measured per epoch: at least the 4 asked for
    assert per >= 4 and calls == [per, 2 * per, 3 * per] == [per, 2 * per, monitor.measured_steps]
    assert all(len(g) == 4 and all(v > 0 for v in g) for g in monitor.grad_norms())
    page = trainer.report(monitor, title="moons")
    assert "<html" in page.html and "moons" in page.html and "layer0.weight" in page.html
    assert page._repr_html_().startswith("<iframe")
    page.save(str(tmp_path / "report.html"))
    assert (tmp_path / "report.html").read_text() == page.html
