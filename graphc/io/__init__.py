"""mx.io: MXNet 1.9.1's data iterators, what Module.fit/score/predict consume.

    base.py          DataDesc, DataBatch, DataIter (the protocol)
    ndarray_iter.py  NDArrayIter (in-memory arrays; every last_batch_handle)
    file_iters.py    CSVIter, MNISTIter (files, MXNet's BatchLoader rules)
    wrappers.py      ResizeIter, PrefetchingIter (iterators over iterators)

Model files (.params, -symbol.json) are not here: they are graphc.formats."""
from __future__ import annotations

from .base import DataBatch, DataDesc, DataIter
from .file_iters import CSVIter, MNISTIter
from .ndarray_iter import NDArrayIter
from .wrappers import PrefetchingIter, ResizeIter
from .image_record_iter import ImageRecordIter  # noqa: F401 - Pillow loads only when a record is decoded

__all__ = ["DataBatch", "DataDesc", "DataIter", "NDArrayIter", "CSVIter", "MNISTIter", "ResizeIter",
           "PrefetchingIter"]
