"""Where gallery images live: the local drop folder here, an S3 bucket in the cloud.

A key is an image's path relative to the root, with POSIX separators, exactly as an S3 key is
relative to its bucket; it is also the image's id in the vector store.
"""

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from lookalike.errors import NotFoundError

TAGS_FILENAME = ".tags.json"


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
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

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
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFoundError(f"no gallery image {key!r}") from None

    def tags(self, key: str) -> dict[str, str]:
        path = self.path(key)
        by_name = _sidecar(path.parent / TAGS_FILENAME)
        merged = {**by_name.get("*", {}), **by_name.get(path.name, {})}
        return {str(name): str(value) for name, value in merged.items()}


def _sidecar(path: Path) -> dict:
    """A folder's tags sidecar ({} when missing or unreadable), parsed once per version of the
    file: indexing asks for the tags of every image, unchanged ones included."""
    try:
        stat = path.stat()
    except OSError:
        return {}
    return _parsed_sidecar(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _parsed_sidecar(path: Path, mtime_ns: int, size: int) -> dict:
    try:
        parsed = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}
