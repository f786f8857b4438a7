"""Allocator settings that keep a long extraction's memory flat; applied when hygge is imported.

Two measured effects (bench/, 10M rows): glibc raises its mmap threshold after large frees, so the
Arrow buffers connectorx allocates stay resident in malloc arenas once freed; and mimalloc (pyarrow's
default pool) holds freed row groups for a while. Pinning the threshold and choosing Arrow's jemalloc
pool cut peak RSS by about a sixth at the same speed.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys

_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter; a fixed value turns the dynamic threshold off
_MMAP_THRESHOLD = 128 * 1024


def tune_allocators() -> None:
    """Pin glibc's mmap threshold and ask Arrow for jemalloc, unless the user set either.

    Arrow reads ARROW_DEFAULT_MEMORY_POOL once, when pyarrow is first imported, and its C++ kernels
    keep using that pool whatever `pa.set_memory_pool` says later; so this must run before that import.
    """
    if not sys.platform.startswith("linux"):  # both effects were measured on glibc; wheels elsewhere vary
        return
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        # No library exposes mallopt; ctypes is the standard way to reach it.
        with contextlib.suppress(OSError, AttributeError, TypeError):
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    if "pyarrow" not in sys.modules:
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
