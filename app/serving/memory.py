"""Give the memory a model load freed back to the system.

Loading a model runs checks on temporary tensors (app/store/checks.py, the fast forms' row
independence); glibc keeps most of what they free in its arenas, counted in the resident size
until reused: 342-389 MB resident after loading the shipped models, 331 MB every time after
`malloc_trim(0)` (BENCHMARKS.md, session 7). So the server trims after the start-up load and
after each hot reload that loaded something.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def trim() -> bool:
    """glibc's malloc_trim(0): free memory at the top of the heap and in the arenas' free
    pages returned to the system. False where there is no glibc (musl, macOS): nothing done."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
