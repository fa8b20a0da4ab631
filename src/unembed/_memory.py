"""Refuse an allocation that cannot fit, with what it needed and what to do, before numpy
tries it (numpy's MemoryError says neither, and a large allocation on Linux may succeed
lazily and be killed later); allocate a large array with its pages mapped at once
(:func:`populated_empty`).

>>> needs_memory(8 * 10, what="ten float64 numbers", advice="none needed")  # fits: silent
>>> try:
...     needs_memory(2 ** 62, what="a (2^31, 2^31) float64 matrix", advice="use fewer labels")
... except Exception as e:
...     print(str(e).split(";")[0])
a (2^31, 2^31) float64 matrix needs 4.61e+18 bytes (4.3e+09 GiB) of memory
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np
from numpy.typing import NDArray

from unembed._checks import UnembedError

__all__ = ["available_bytes", "needs_memory", "populated_empty"]

#: Arrays from this size up are allocated by :func:`populated_empty` with their pages mapped
#: at once (below it, np.empty: the heap's pages are reused).
POPULATE_BYTES = 1 << 26


def populated_empty(shape: tuple[int, ...], min_bytes: int = POPULATE_BYTES
                    ) -> NDArray[np.float64]:
    """An uninitialised float64 array of ``shape`` whose pages the kernel maps all at once
    (on Linux, from ``min_bytes`` up: an anonymous private mapping with MAP_POPULATE, freed
    with the array) instead of one page fault per 4 KiB page on first write. Measured on this
    project's virtual machine: writing a fresh 4.2 GB float64 array took 5.6 to 14 s, almost
    all of it page faults; mapped this way, 2 s in all. Elsewhere (or when the mapping is
    refused) ``np.empty(shape)``."""
    n = 8 * math.prod(shape)
    if sys.platform == "linux" and n >= max(1, min_bytes):
        import mmap

        try:
            mm = mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
                           | mmap.MAP_POPULATE)
        except (OSError, ValueError):
            return np.empty(shape)
        return np.ndarray(shape, dtype=np.float64, buffer=mm)
    return np.empty(shape)


def available_bytes() -> int | None:
    """The memory the system can give a new allocation without swapping (MemAvailable of
    /proc/meminfo; the free physical pages elsewhere); None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, AttributeError):
        return None


def _size(n: float) -> str:
    return f"{n:.3g} bytes ({n / 2 ** 30:.2g} GiB)"


def needs_memory(nbytes: float, *, what: str, advice: str) -> None:
    """Raise an UnembedError naming ``what``, the bytes it needs, the bytes available and
    ``advice`` when ``nbytes`` exceed the available memory (nothing when it is unknown)."""
    avail = available_bytes()
    if avail is not None and nbytes > avail:
        raise UnembedError(f"{what} needs {_size(float(nbytes))} of memory; {_size(float(avail))} "
                           f"are available. {advice}")
