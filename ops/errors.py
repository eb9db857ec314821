"""Error types every layer raises. They live at the bottom so that ops, passes and runtime
can raise them without importing the front end; `graphc` re-exports them."""


class GraphcError(Exception):
    """Base of every error graphc raises on purpose."""


class ShapeError(GraphcError, ValueError):
    """An operator got inputs whose shapes it cannot combine."""


class DTypeError(GraphcError, TypeError):
    """An operator got inputs of a dtype it does not accept."""


class IndexRangeError(GraphcError, IndexError):
    """An index array holds a value outside the range an operator accepts (mode='raise')."""


class OpAttributeError(GraphcError, ValueError):
    """An operator attribute is missing, unknown or of the wrong kind."""


class FormatError(GraphcError, ValueError):
    """A model or parameter file is malformed; it is refused, never executed."""


class CompileError(GraphcError):
    """A backend could not compile a graph."""
