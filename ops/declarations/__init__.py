"""Every operator declaration, one module per family. Importing this fills the registry."""
from . import elementwise, reduce, matrix, shape, nn, creation, random, indexing  # noqa: F401
from . import slicing, join, loss, rnn  # noqa: F401
from . import conv, pool, norm, sequence, sorting, resample  # noqa: F401
from . import indexing_nd, linalg, sampling  # noqa: F401
from . import placement  # noqa: F401
from . import contrib, control_flow, detection, ranges, ctc, custom, stats  # noqa: F401
from . import misc_math, legacy_outputs, amp, update_ops, spatial, image_ops, random_pdf, contrib_extra  # noqa: F401  (MXNet 1.x gap fillers)
