"""TensorType: what the IR knows about a value (shape, dtype, device)."""
from __future__ import annotations

from dataclasses import dataclass
import math

from .dtypes import SHORT, canonical


@dataclass(frozen=True)
class TensorType:
    shape: tuple
    dtype: str = "float32"
    device: str = "cpu(0)"

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        object.__setattr__(self, "dtype", canonical(self.dtype))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        import numpy as np
        return self.size * np.dtype(self.dtype).itemsize

    def with_(self, shape=None, dtype=None, device=None) -> "TensorType":
        return TensorType(self.shape if shape is None else shape,
                          self.dtype if dtype is None else dtype,
                          self.device if device is None else device)

    def __str__(self) -> str:
        return f"{SHORT[self.dtype]}[{','.join(map(str, self.shape))}]"
