"""ImageRecordDataset: (image, label) samples from an image RecordIO file, as MXNet's: the image
is an HWC uint8 NDArray decoded by mx.image (RGB, or 1 gray channel for flag=0), the label is
the IRHeader's (a float, or a float32 array for multi-label records)."""
from __future__ import annotations

from .... import recordio
from ..record_dataset import RecordFileDataset

__all__ = ["ImageRecordDataset"]


class ImageRecordDataset(RecordFileDataset):
    """`transform(image, label)`, when given, is applied to every sample."""

    def __init__(self, filename, flag=1, transform=None):
        super().__init__(filename)
        self._flag = flag
        self._transform = transform

    def __getitem__(self, idx):
        from .... import image
        header, payload = recordio.unpack(super().__getitem__(idx), self.filename)
        img = image.imdecode(payload, self._flag)
        if self._transform is not None:
            return self._transform(img, header.label)
        return img, header.label
