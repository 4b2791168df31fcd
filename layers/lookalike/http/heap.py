"""Keeping the local server's resident memory near what it needs, on glibc.

Each request decodes an image and runs the model on its own thread; glibc gives busy threads
arenas of their own (up to 8 per core) and keeps freed memory in them, so after a burst of load
the process stays at its peak size. Capping the arenas and trimming the heap when the server falls
idle returns that memory to the system. Where the C library is not glibc both are no-ops.
"""

import ctypes
import ctypes.util

# glibc's mallopt parameter number for the arena limit (malloc.h: M_ARENA_MAX).
_M_ARENA_MAX = -8
ARENA_LIMIT = 4


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim, libc.mallopt  # noqa: B018  (both exist only on glibc)
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _glibc()


def limit_arenas(arenas: int = ARENA_LIMIT) -> None:
    """Like MALLOC_ARENA_MAX, set from inside the process (threads started later obey it)."""
    if _LIBC is not None:
        _LIBC.mallopt(_M_ARENA_MAX, arenas)


def return_free_memory() -> None:
    """Give the pages freed since the last call back to the system (glibc's malloc_trim)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
