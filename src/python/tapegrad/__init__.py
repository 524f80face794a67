"""tapegrad: reverse-mode automatic differentiation on a tape.

Every operation on a Scalar or a Tensor is recorded; ``backward()`` sweeps the
record in reverse and sends gradients down every edge as upstream x local.

    >>> import tapegrad as tg
    >>> x = tg.Scalar(2.0); y = tg.Scalar(-3.0)
    >>> z = x * y + tg.tanh(x)
    >>> z.backward()
    >>> round(x.grad, 4), y.grad
    (-2.9293, 2.0)

See docs/python.md for the walk-through.
"""
import atexit as _atexit

from . import _tapegrad
from ._tapegrad import *  # noqa: F401,F403  (the engine: Scalar, Tensor, math, derivatives, inspection)
from ._tapegrad import __doc__ as _engine_doc  # noqa: F401
del nn  # noqa: F821  (the extension's submodule; tapegrad/nn.py extends it)
from . import nn  # noqa: E402,F401

__version__ = "0.1.0"

# The default tapes hold Python objects (arrays a tensor uses in place); drop
# them while the interpreter can still release those.
_atexit.register(_tapegrad._drop_default_tapes)
