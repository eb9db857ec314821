"""The dtypes graphc knows, their short printed names and MXNet's numeric flags."""
import numpy as np

from .errors import DTypeError

# canonical name -> short name printed in graph listings
SHORT = {
    "float32": "f32", "float64": "f64", "float16": "f16", "bfloat16": "bf16",
    "int8": "i8", "int32": "i32", "int64": "i64", "uint8": "u8", "bool": "b1",
}
# MXNet's dtype flags (mshadow type codes), as written in .params files and __dtype__ attrs
MXNET_FLAG = {"float32": 0, "float64": 1, "float16": 2, "uint8": 3, "int32": 4,
              "int8": 5, "int64": 6, "bool": 7, "bfloat16": 12}
FROM_MXNET_FLAG = {v: k for k, v in MXNET_FLAG.items()}

FLOATS = frozenset({"float16", "float32", "float64", "bfloat16"})
INTEGERS = frozenset({"int8", "int32", "int64", "uint8"})


def canonical(dtype) -> str:
    """Turn any dtype spelling (np.float32, 'float32', np.dtype, None) into its canonical name."""
    if dtype is None:
        return "float32"
    if isinstance(dtype, str) and dtype in SHORT:
        return dtype
    try:
        name = np.dtype(dtype).name
    except TypeError as exc:
        raise DTypeError(f"unknown dtype {dtype!r}") from exc
    if name not in SHORT:
        raise DTypeError(f"dtype {name!r} is not supported; graphc knows {sorted(SHORT)}")
    return name


def is_float(dtype: str) -> bool:
    return dtype in FLOATS


def to_numpy(dtype: str):
    return np.dtype(dtype)
