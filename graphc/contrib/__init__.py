"""mx.contrib: MXNet 1.x's experimental namespaces as user code reaches them:
`mx.contrib.autograd` (the first autograd API: train_section, mark_variables, grad_and_loss...),
`mx.contrib.ndarray` / `mx.contrib.nd` and `mx.contrib.symbol` / `mx.contrib.sym` (the same
contrib operators as nd.contrib and sym.contrib)."""
from . import autograd  # noqa: F401
from ..ndarray import contrib as ndarray  # noqa: F401
from ..symbol import contrib as symbol  # noqa: F401

nd = ndarray
sym = symbol
