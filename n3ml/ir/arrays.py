"""The array dtypes the IR stores and the text format writes, and exact conversion into them.

Shared by the parser, the printer and the sidecar reader, so that what one writes the other reads.
"""

from __future__ import annotations

import numpy as np

from .syntax import DTYPES as TEXT_DTYPES  # name in the text format (`tensor<f32>(...)`) -> dtype
from .types import VerifyError

DTYPE_NAMES = {np.dtype(v): k for k, v in TEXT_DTYPES.items()}

# conversions that keep every value exactly (the wider type holds all values of the narrower)
_WIDEN = {np.dtype(np.float16): np.dtype(np.float32), np.dtype(np.uint16): np.dtype(np.int32),
          np.dtype(np.uint32): np.dtype(np.int64)}

_KIND_WORDS = {"c": "complex", "M": "datetime", "m": "timedelta", "U": "string", "S": "bytes",
               "O": "object", "V": "structured/raw", "b": "boolean"}


def to_text_dtype(arr: np.ndarray, what: str) -> np.ndarray:
    """`arr` in one of TEXT_DTYPES, converted exactly (byte order, float16, uint16/32, an in-range
    uint64 or long double), or VerifyError naming `what` and the dtype.

    Never truncates: a conversion that would change a value is refused instead.
    """
    dt = arr.dtype
    if dt.kind not in "iuf" or dt.fields is not None or dt.subdtype is not None:
        word = _KIND_WORDS.get(dt.kind, dt.kind)
        raise VerifyError(f"array `{what}` has dtype {dt.str} ({word}); n3ml arrays are real numbers "
                          f"({', '.join(TEXT_DTYPES)})")
    if not dt.isnative:
        arr = arr.astype(dt.newbyteorder("="))  # byte order only: every value is kept
        dt = arr.dtype
    if dt in DTYPE_NAMES:
        return arr
    if dt in _WIDEN:
        return arr.astype(_WIDEN[dt])
    if dt.kind == "u":  # uint64: exact as int64 when every value fits
        if arr.size == 0 or int(arr.max()) <= np.iinfo(np.int64).max:
            return arr.astype(np.int64)
        raise VerifyError(f"array `{what}` of dtype {dt.str} holds {int(arr.max())}, beyond int64; "
                          "it cannot be stored exactly")
    if dt.kind == "f":  # long double and other floats: exact as float64 only if no value changes
        conv = arr.astype(np.float64)
        if np.array_equal(conv.astype(dt), arr, equal_nan=True):
            return conv
        raise VerifyError(f"array `{what}` of dtype {dt.str} holds values float64 cannot represent exactly")
    raise VerifyError(f"array `{what}` has dtype {dt.str}; n3ml arrays are {', '.join(TEXT_DTYPES)}")
