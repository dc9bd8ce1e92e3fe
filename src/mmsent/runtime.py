"""Process-wide settings applied once when mmsent is imported; imports nothing heavy.

glibc's malloc hands every block above its mmap threshold (128 KiB at first,
adapting up to 32 MiB) straight to the kernel and returns it on free. A
convolution network's activations are blocks of tens of MB, allocated and freed
every batch, so with the default settings each batch maps fresh pages and the
kernel zero-fills them one page fault at a time: on 2 cores an EfficientNet-Lite0
forward loop spent as long in the kernel as in the model. Raising the mmap
threshold, and the trim threshold and top pad with it, keeps those blocks on the
heap, where the next batch reuses them (benchmarks/allocator.py shows the
faults and the system time with and without).

`MMSENT_MALLOC=default` leaves glibc's settings alone; so does a user's own
MALLOC_*_ / GLIBC_TUNABLES setting, and a process without glibc (musl, macOS,
Windows) is left as it is.
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger(__name__)

SWITCH = "MMSENT_MALLOC"  # "default" (or "off") keeps glibc's own settings

# mallopt parameters, from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4

# Largest mmap threshold glibc accepts on 64-bit (HEAP_MAX / 2); blocks above it are still mapped.
# (Switching mapping off altogether, M_MMAP_MAX 0, took the last faults away but made spawned
# training processes abort now and then, "terminate called without an active exception".)
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 1 << 30  # give memory back to the kernel only above 1 GiB of free heap top
TOP_PAD = 64 << 20  # grow the heap in large steps: fewer brk calls

SETTINGS = {
    "M_MMAP_THRESHOLD": (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
    "M_TRIM_THRESHOLD": (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
    "M_TOP_PAD": (M_TOP_PAD, TOP_PAD),
}
_USER_VARIABLES = (
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_MMAP_MAX_",
    "GLIBC_TUNABLES",
)

_applied: dict[str, int] | None = None


def glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (the one with mallopt and these parameters), else None."""
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
        return libc if hasattr(libc, "mallopt") else None
    except (OSError, AttributeError):
        return None


def tune_allocator() -> dict[str, int]:
    """Apply the settings once per process; returns what was set ({} when left alone)."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = {}
    if os.environ.get(SWITCH, "").strip().lower() in ("default", "off", "0", "no"):
        return _applied
    if any(name in os.environ for name in _USER_VARIABLES):
        return _applied  # the user tuned malloc themselves
    libc = glibc()
    if libc is None:
        return _applied
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    for name, (parameter, value) in SETTINGS.items():
        if libc.mallopt(parameter, value) == 1:
            _applied[name] = value
        else:
            log.debug("mallopt(%s, %d) was refused", name, value)
    return _applied


def release_memory() -> bool:
    """Hand the heap's free memory back to the kernel (glibc's malloc_trim); False where there is none.

    With the trim threshold raised above, memory freed by a large step (the encoders once extraction
    is over) would otherwise stay with the process for the rest of its life."""
    libc = glibc()
    if libc is None or not hasattr(libc, "malloc_trim"):
        return False
    libc.malloc_trim.argtypes = (ctypes.c_size_t,)
    libc.malloc_trim(0)
    return True
