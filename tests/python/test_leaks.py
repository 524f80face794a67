"""Reference counting: many small graphs leave neither Python memory nor tape nodes behind."""
import gc
import tracemalloc

import numpy as np
import tapegrad as tg


def small_graph(i):
    x = tg.Scalar(0.5 + 1e-6 * i)
    y = tg.Scalar(2.0)
    z = tg.tanh(x * y + 1.0) * x
    z.backward()
    t = tg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    s = (t * z.value).sum()
    s.backward()
    return x.grad + float(t.grad[0])


def test_no_leak_over_100k_small_graphs():
    gc.collect()
    tape = tg.Tape.current()
    # A handle left by an earlier test would keep every graph below alive
    # (tapes with tensor nodes are cleared, not compacted): say so, not hang.
    assert tape.handles == 0, f"{tape.handles} handles on the default tape before the test"
    for i in range(2000):  # warm up caches and pools
        small_graph(i)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for i in range(100_000):
        small_graph(i)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert grown < 64 * 1024, f"Python memory grew by {grown} bytes"
    # every handle is gone, so the default tape is empty again
    assert tape.handles == 0
    assert tape.scalar_count == 1 and tape.tensor_count == 0
    mem = tape.memory()
    assert mem["tensor_bytes"] == 0 and mem["scalar_bytes"] <= 64  # the sink node only
