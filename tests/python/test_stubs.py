"""The type stubs cover the whole public API, and every binding has a docstring or a stub."""
import ast
import os

import tapegrad as tg
from tapegrad import nn


def stub_names(module):
    path = os.path.join(os.path.dirname(module.__file__), os.path.basename(module.__file__).replace(".py", ".pyi"))
    tree = ast.parse(open(path).read())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for t in getattr(node, "targets", [getattr(node, "target", None)]):
                if isinstance(t, ast.Name):
                    names.add(t.id)
        elif isinstance(node, ast.ImportFrom):
            names.update(a.asname or a.name for a in node.names)
    return names


def public(module):
    return {n for n in dir(module) if not n.startswith("_") and not isinstance(getattr(module, n), type(os))}


def test_every_public_name_has_a_stub():
    assert public(tg) - stub_names(tg) == set()
    assert public(nn) - stub_names(nn) == set()


def test_stubs_name_nothing_that_is_not_there():
    typing_helpers = {"ArrayLike", "Number", "Handle", "Handles", "Data", "Any", "Callable", "Iterable",
                      "Optional", "Sequence", "Tuple", "Union", "overload", "np", "npt", "Tape", "Tensor", "Page"}
    private = {n for n in stub_names(tg) if n.startswith("_")}
    assert stub_names(tg) - typing_helpers - private - set(dir(tg)) == set()
    assert stub_names(nn) - typing_helpers - set(dir(nn)) == set()
