# The tests import the package from the build tree (PYTHONPATH set by ctest,
# or by hand: PYTHONPATH=build/release/python /usr/bin/python3 -m pytest tests/python).
import threading

import numpy as np
import pytest


def numeric_grad(f, x, eps=1e-6):
    """Central differences of a function of a float64 vector."""
    x = np.asarray(x, dtype=np.float64)
    g = np.zeros_like(x)
    for i in range(x.size):
        up, down = x.copy(), x.copy()
        up.flat[i] += eps
        down.flat[i] -= eps
        g.flat[i] = (f(up) - f(down)) / (2 * eps)
    return g


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def ticks_during(work):
    """How many times another Python thread ran its loop while work() ran:
    many when work() released the GIL, a handful when it held it."""
    ticks = []
    stop = threading.Event()

    def count():
        while not stop.is_set():
            ticks.append(1)

    t = threading.Thread(target=count)
    t.start()
    try:
        work()
    finally:
        stop.set()
        t.join()
    return len(ticks)
