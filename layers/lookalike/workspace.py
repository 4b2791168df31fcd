"""A store's record of the gallery it indexes (`<store>/gallery.json`).

The embedded store lives apart from the folder it indexes; this small record ties them, so that
`serve`, `reindex` and later `index` runs go on the same way without repeating flags.

It is also what keeps one store to one gallery: every writer of a folder (`index`, `serve
--watch`) claims the store for that folder before it writes. Two writers of the same folder
agree on every image and may run together; a writer of another folder would remove every image
the first one indexes as "gone" from its own folder, so it is refused.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from lookalike.errors import LookalikeError
from lookalike.stores.faiss.files import writer_lock

GALLERY_FILENAME = "gallery.json"


class GalleryMismatchError(LookalikeError):
    """The store belongs to another gallery folder than the one a writer would index into it."""

    status = 409


@dataclass(frozen=True)
class GalleryRecord:
    """The folder a store's images are read from, and whether region vectors were added (a
    reindex that forgot --regions would silently drop every image's fragments)."""

    root: Path
    regions: bool = False

    @classmethod
    def read(cls, store_path: Path) -> "GalleryRecord | None":
        path = store_path / GALLERY_FILENAME
        if not path.is_file():
            return None
        record = json.loads(path.read_text())
        return cls(Path(record["root"]), bool(record.get("regions", False)))

    def write(self, store_path: Path) -> None:
        (store_path / GALLERY_FILENAME).write_text(json.dumps({"root": str(self.root), "regions": self.regions}))

    def claim(self, store_path: Path) -> None:
        """Record this gallery in the store before writing to it, or GalleryMismatchError if the
        store belongs to another folder that still exists (a folder that is gone was moved or
        renamed: the store follows it). Under the store's writer lock, so that of two writers of
        different folders starting together the second is refused."""
        with writer_lock(store_path):
            recorded = GalleryRecord.read(store_path)
            if recorded is not None and recorded.root.resolve() != self.root.resolve() and recorded.root.is_dir():
                raise GalleryMismatchError(
                    f"the store at {store_path} holds the gallery folder {recorded.root}, not {self.root}: "
                    f"index {self.root} into another store (--store DIR), or remove {store_path} to start over"
                )
            self.write(store_path)
