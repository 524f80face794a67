"""docs/python.md runs: each ```python block in order, in one namespace, and what
it prints must equal the indented block that follows it."""
import contextlib
import io
import os
import re

import pytest

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "python.md")


def blocks():
    text = open(DOC).read()
    out = []
    for m in re.finditer(r"```python\n(.*?)```\n(\n((?:    [^\n]*\n)+))?", text, re.S):
        expected = m.group(3)
        if expected is not None:
            expected = "".join(line[4:] + "\n" for line in expected.rstrip("\n").split("\n"))
        out.append((m.group(1), expected, text.count("\n", 0, m.start()) + 2))
    return out


def test_python_md_runs_and_prints_what_it_says(tmp_path, monkeypatch):
    if not os.path.isdir("/usr/share/datasets/fashion-mnist"):
        pytest.skip("the walk-through trains on Fashion-MNIST (tools/deps.sh train)")
    monkeypatch.chdir(tmp_path)
    ns = {"__name__": "python_md"}
    found = blocks()
    assert len(found) >= 8
    try:
        for code, expected, line in found:
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                exec(compile(code, f"docs/python.md:{line}", "exec"), ns)
            if expected is not None:
                assert buf.getvalue() == expected, f"docs/python.md block at line {line}"
    finally:
        # The page's ScalarFunction is registered for the life of the process
        # and its lambdas keep this namespace as their globals: empty it, so
        # the handles it holds go now and the default tape is free again.
        ns.clear()
