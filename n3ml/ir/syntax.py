"""Vocabulary of the .n3ml text format shared by the parser (`text.py`) and the printer (`printer.py`).

A leaf module, so that the parser (which saves through the printer) and the printer need not import
each other.
"""

from __future__ import annotations

import numpy as np

TIME_FIELDS = frozenset({"dt", "tau", "tau_syn", "tau_mem", "tau_adapt"})  # fields printed with a unit (ms)
UNITS = {"ms": 1.0, "s": 1000.0, "us": 1e-3}
DTYPES = {"f64": np.float64, "f32": np.float32, "i64": np.int64, "i32": np.int32, "i16": np.int16,
          "i8": np.int8, "u8": np.uint8}
