"""Refuse an allocation that cannot fit, with what it needed and what to do, before numpy
tries it (numpy's MemoryError says neither, and a large allocation on Linux may succeed
lazily and be killed later).

>>> needs_memory(8 * 10, what="ten float64 numbers", advice="none needed")  # fits: silent
>>> try:
...     needs_memory(2 ** 62, what="a (2^31, 2^31) float64 matrix", advice="use fewer labels")
... except Exception as e:
...     print(str(e).split(";")[0])
a (2^31, 2^31) float64 matrix needs 4.61e+18 bytes (4.3e+09 GiB) of memory
"""

from __future__ import annotations

import os

from unembed._checks import UnembedError

__all__ = ["available_bytes", "needs_memory"]


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
