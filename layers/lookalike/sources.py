"""Where gallery images live: the local drop folder here, an S3 bucket in the cloud.

A key is an image's path relative to the root, with POSIX separators, exactly as an S3 key is
relative to its bucket; it is also the image's id in the vector store.
"""

import functools
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from lookalike.errors import NotFoundError
from lookalike.files import MAX_IMAGE_FILE_BYTES, NotARegularFileError, read_regular_file

TAGS_FILENAME = ".tags.json"
# A sidecar names the files of one folder: a megabyte holds tens of thousands of entries.
MAX_SIDECAR_BYTES = 1024 * 1024

logger = logging.getLogger(__name__)


class ImageSource(Protocol):
    def keys(self) -> Iterator[str]: ...

    def read(self, key: str) -> bytes: ...

    def tags(self, key: str) -> dict[str, str]: ...


@runtime_checkable
class LinkedSource(Protocol):
    """A source whose images a client can fetch itself (S3: a short-lived presigned GET), so that
    serving an image need not pass its bytes through the function."""

    def url(self, key: str) -> str: ...


class FolderSource:
    """A local folder standing in for the bucket.

    Hidden files and folders (a leading dot) are never gallery images. Tags, which may only
    filter and never rank, come from a `.tags.json` sidecar in the image's folder that maps file
    names to `{"tag": "value"}` objects, `"*"` applying to every image of that folder.

    Only regular files are read, never through a final symbolic link (the path is resolved and
    checked to lie inside the root first), and at most `max_file_bytes` of them: a FIFO or a
    device dropped at an image's path is "no gallery image", never a reader blocked or flooded.
    """

    def __init__(self, root: str | Path, *, max_file_bytes: int = MAX_IMAGE_FILE_BYTES) -> None:
        self.root = Path(root).resolve()
        self.max_file_bytes = max_file_bytes

    def keys(self) -> Iterator[str]:
        for path in sorted(self.root.rglob("*")):
            relative = path.relative_to(self.root)
            if any(part.startswith(".") for part in relative.parts) or not path.is_file():
                continue
            yield relative.as_posix()

    def key_of(self, path: str | Path) -> str | None:
        """The key of a file inside the root, or None for paths outside it or hidden ones."""
        try:
            relative = Path(path).resolve().relative_to(self.root)
        except ValueError:
            return None
        if not relative.parts or any(part.startswith(".") for part in relative.parts):
            return None
        return relative.as_posix()

    def path(self, key: str) -> Path:
        """The file behind a key; keys that would escape the root are refused as missing."""
        candidate = (self.root / key).resolve()
        if key.startswith("/") or candidate == self.root or not candidate.is_relative_to(self.root):
            raise NotFoundError(f"no gallery image {key!r}")
        return candidate

    def read(self, key: str) -> bytes:
        path = self.path(key)
        try:
            return read_regular_file(path, self.max_file_bytes, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"no gallery image {key!r}") from None
        except NotARegularFileError as error:
            raise NotFoundError(f"no gallery image {key!r}: {error.strerror}") from None

    def tags(self, key: str) -> dict[str, str]:
        path = self.path(key)
        by_name = _sidecar(path.parent / TAGS_FILENAME)
        merged = {**by_name.get("*", {}), **by_name.get(path.name, {})}
        return {str(name): str(value) for name, value in merged.items()}


def _sidecar(path: Path) -> dict[str, dict[str, str]]:
    """A folder's tags sidecar ({} when missing, unreadable or malformed), parsed once per version
    of the file: indexing asks for the tags of every image, unchanged ones included."""
    try:
        stat = path.stat()
    except OSError:
        return {}
    return _parsed_sidecar(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _parsed_sidecar(path: Path, mtime_ns: int, size: int) -> dict[str, dict[str, str]]:
    """The sidecar's tags by file name. A malformed sidecar is reported here, once per version of
    the file, and ignored as a whole: its images are indexed without tags rather than not at all,
    and no half of a file that says something else than intended filters searches."""
    try:
        parsed = json.loads(read_regular_file(path, MAX_SIDECAR_BYTES, follow_symlinks=False))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        logger.warning("ignoring the tags in %s: %s", path, error)
        return {}
    problem = _sidecar_problem(parsed)
    if problem:
        logger.warning("ignoring the tags in %s: %s", path, problem)
        return {}
    return parsed


def _sidecar_problem(parsed: object) -> str | None:
    """Why `parsed` is not an object mapping file names to objects of string (or number) tags."""
    if not isinstance(parsed, dict):
        return f"expected an object of file names, found {type(parsed).__name__}"
    for name, tags in parsed.items():
        if not isinstance(tags, dict):
            return f"{name!r}: expected an object of tags, found {type(tags).__name__}"
        for tag, value in tags.items():
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                return f"{name!r}: tag {tag!r} is {type(value).__name__}, not a string"
    return None
