"""tapegrad.nn: layers, losses, optimisers, data sets and the trainer.

    >>> from tapegrad import nn
    >>> model = nn.MLP([784, 128, 10])
    >>> opt = nn.Adam(model.parameters(), lr=1e-3)
    >>> trainer = nn.Trainer(model, opt, epochs=2, batch_size=64)
    >>> history = trainer.fit((x_train, y_train), test=(x_test, y_test), progress=True)
"""
import sys as _sys
import time as _time

from ._tapegrad import nn as _ext

for _name in dir(_ext):
    if not _name.startswith("__"):
        globals()[_name] = getattr(_ext, _name)
del _name


class Progress:
    """A progress bar during each epoch and one line after it, as `tapegrad train` prints.

    The bar goes to ``file`` (sys.stderr by default) at most every ``interval``
    seconds; the epoch line to sys.stdout.
    """

    def __init__(self, file=None, interval=0.1):
        self.file = file
        self.interval = interval
        self._last = 0.0
        self._start = 0.0

    def on_epoch_begin(self, trainer, epoch):
        self._start = _time.perf_counter()
        self._last = 0.0

    def on_step_end(self, trainer, s):
        now = _time.perf_counter()
        done = s.step + 1
        if done < s.steps_in_epoch and now - self._last < self.interval:
            return
        self._last = now
        out = self.file or _sys.stderr
        frac = done / s.steps_in_epoch
        width = 30
        filled = int(round(frac * width))
        elapsed = max(now - self._start, 1e-9)
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        out.write("\repoch {}/{} [{}{}] {:3.0f}% {:8.0f} samples/s  loss {:.4f}  ETA {:4.1f}s ".format(
            s.epoch, trainer.epochs, "=" * filled, " " * (width - filled), 100 * frac,
            s.samples_seen / elapsed, s.epoch_loss, eta))
        out.flush()

    def on_epoch_end(self, trainer, m):
        out = self.file or _sys.stderr
        out.write("\r" + " " * 100 + "\r")
        out.flush()
        print("epoch {:2}  train loss {:.4f}  test loss {:.4f}  test accuracy {:6.2f}%  {:.2f} s  "
              "{:.0f} samples/s".format(m["epoch"], m["train_loss"], m["test_loss"],
                                        100 * m["test_accuracy"], m["seconds"],
                                        m["samples_per_second"]))


def _fit(self, train, test=None, callbacks=(), progress=False):
    """Trains from a Dataset or an (x, y) pair of arrays; returns each epoch's metrics.

    x holds one sample per row (float32, or anything NumPy converts; copied once),
    y the integer labels. ``progress=True`` adds a Progress callback. The epochs
    run in C++ without the GIL; Python callbacks take it only when they are called.
    """
    cbs = list(callbacks)
    if progress:
        cbs.append(Progress())
    return self._fit(train, test, cbs)


Trainer.fit = _fit  # noqa: F821  (Trainer comes from the extension above)
