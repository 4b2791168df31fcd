"""Reading a file from disk that anyone may have put there: only regular files, only so many bytes.

A FIFO at an image's path blocks a plain `open` until some writer comes, a device such as
/dev/zero never ends, and a 600 MB file would be read whole before anything looked at it. So
the file is opened without blocking (and, where asked, without following a final symbolic
link), the open descriptor is `fstat`-ed, and only a regular file within the cap is read: what
the descriptor names cannot be swapped between the check and the read.
"""

import errno
import os
import stat
from pathlib import Path

# The largest image file read from disk (a gallery folder's files, the CLI's query files). Well
# above any photo we index (the demo gallery's largest PNGs are 14.6 MB; a 48 MP camera JPEG is
# 10-25 MB), well below what would strain a laptop; an uncompressed 50 MP TIFF (150 MB) is over
# it and is refused rather than read.
MAX_IMAGE_FILE_BYTES = 100 * 1024 * 1024

_READ_CHUNK = 1 << 20

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class NotARegularFileError(OSError):
    """The path names a directory, FIFO, device, socket or (where links are not followed) a link."""


class FileTooLargeError(OSError):
    """A regular file over the cap: an OSError, like any file that cannot be read, so that the
    indexer records it as failed with this reason and goes on."""


def read_regular_file(path: str | Path, max_bytes: int, *, follow_symlinks: bool = True) -> bytes:
    """The bytes of the regular file at `path`, refusing anything else and anything over `max_bytes`."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_symlinks else os.O_NOFOLLOW)
    try:
        descriptor = os.open(path, flags)
    except OSError as error:
        if error.errno == errno.ELOOP and not follow_symlinks:
            raise NotARegularFileError(errno.ELOOP, "a symbolic link, not a regular file", str(path)) from None
        raise
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            kind = next((name for is_kind, name in _KINDS if is_kind(status.st_mode)), "not a file")
            raise NotARegularFileError(errno.EINVAL, f"{kind}, not a regular file", str(path))
        if status.st_size > max_bytes:
            raise _too_large(path, max_bytes)
        chunks, size = [], 0
        # The file may grow after fstat: never read past the cap, whatever it says now.
        while chunk := os.read(descriptor, min(_READ_CHUNK, max_bytes + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(path, max_bytes)
        return b"".join(chunks)
    finally:
        os.close(descriptor)


def _too_large(path: str | Path, max_bytes: int) -> FileTooLargeError:
    return FileTooLargeError(errno.EFBIG, f"the file is over {max_bytes:,} bytes, the most an image file may hold", str(path))
