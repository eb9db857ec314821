"""RecordFileDataset: the records of a RecordIO file (with its .idx beside it) as a dataset of
raw bytes. It holds an MXIndexedRecordIO, which pickles by reopening the file, so DataLoader
worker processes each read through their own handle."""
from __future__ import annotations

import os

from ... import recordio
from .dataset import Dataset

__all__ = ["RecordFileDataset"]


class RecordFileDataset(Dataset):
    """Sample i is the bytes of the i-th record listed in `<name>.idx` for `<name>.rec`."""

    def __init__(self, filename):
        self.idx_file = os.path.splitext(filename)[0] + ".idx"
        self.filename = filename
        self._record = recordio.MXIndexedRecordIO(self.idx_file, self.filename, "r")

    def __getitem__(self, idx):
        keys = self._record.keys
        if not -len(keys) <= idx < len(keys):
            raise IndexError(f"RecordFileDataset: index {idx} is out of range for {len(keys)} records "
                             f"in {self.filename!r}")
        return self._record.read_idx(keys[idx])

    def __len__(self):
        return len(self._record.keys)
