"""The operator registry: one declaration per operator, plus the graph IR they build.

This package must never import the front end (`graphc.nd`, `graphc.gluon`) or a backend.
It loads only as `graphc.ops`: a second copy under the name `ops` would carry a second,
empty registry, which fails in confusing ways far from the cause.
"""
if __name__ != "graphc.ops":  # pragma: no cover - the guard itself
    raise ImportError(
        f"the operator registry was imported as {__name__!r}; import it as 'graphc.ops' "
        "(the repository root must not be on sys.path: run tests with .venv/bin/pytest)")

from .errors import GraphcError, ShapeError, DTypeError, OpAttributeError, FormatError  # noqa: F401
from .registry import OpDef, get_op, has_op, all_ops, register  # noqa: F401
from . import declarations as _declarations  # noqa: F401  (fills the registry)
