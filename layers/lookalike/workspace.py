"""A store's record of the gallery it indexes (`<store>/gallery.json`).

The embedded store lives apart from the folder it indexes; this small record ties them, so that
`serve`, `reindex` and later `index` runs go on the same way without repeating flags.
"""

import json
from dataclasses import dataclass
from pathlib import Path

GALLERY_FILENAME = "gallery.json"


@dataclass(frozen=True)
class GalleryRecord:
    """How a store's gallery was last indexed (`<store>/gallery.json`): the folder its images are
    read from, and whether region vectors were added, so that `serve`, `reindex` and later
    `index` runs go on the same way without repeating flags (a reindex that forgot --regions
    would silently drop every image's fragments)."""

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
