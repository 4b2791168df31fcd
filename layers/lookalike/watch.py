"""The local drop folder's notifications: the stand-in for S3 events on the embedded default.

watchdog reports file-system events; they are collected for a short quiet period (an editor or
a copy writes a file in several steps) and then applied through the same idempotent Indexer that
`lookalike index` uses, so a burst of events for one file costs one embedding. A changed tags
sidecar (`.tags.json`) touches every image of its folder: their tags, which filter searches,
may have changed with it.
"""

import logging
import threading
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from lookalike.indexing import Indexer
from lookalike.sources import TAGS_FILENAME, FolderSource

QUIET_SECONDS = 0.5

logger = logging.getLogger(__name__)


class FolderWatcher(FileSystemEventHandler):
    """Indexes files added or changed under the folder and removes deleted ones, within seconds."""

    def __init__(self, source: FolderSource, indexer: Indexer) -> None:
        self.source = source
        self.indexer = indexer
        self._touched: set[str] = set()
        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._observer = Observer()
        self._worker = threading.Thread(target=self._apply_loop, name="lookalike-watch", daemon=True)

    def start(self) -> None:
        self._observer.schedule(self, str(self.source.root), recursive=True)
        self._observer.start()
        self._worker.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wakeup.set()
        self._observer.stop()
        self._observer.join()
        self._worker.join()

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory and event.event_type != "deleted":
            return
        paths = [Path(path) for path in (event.src_path, getattr(event, "dest_path", "")) if path]
        for sidecar in [path for path in paths if path.name == TAGS_FILENAME]:
            try:
                paths += [image for image in sidecar.parent.iterdir() if image.is_file()]
            except OSError:  # the folder went with it: its own event removes what it held
                paths.append(sidecar.parent)
        keys = {self.source.key_of(path) for path in paths}
        with self._lock:
            self._touched |= {key for key in keys if key}
        self._wakeup.set()

    def _apply_loop(self) -> None:
        while not self._stopping.is_set():
            self._wakeup.wait()
            while self._wakeup.wait(QUIET_SECONDS) and not self._stopping.is_set():
                self._wakeup.clear()
            with self._lock:
                touched, self._touched = sorted(self._touched), set()
            if touched and not self._stopping.is_set():
                self._apply(touched)

    def _apply(self, keys: list[str]) -> None:
        present = [key for key in keys if (self.source.root / key).is_file()]
        known = self.indexer.store.content_hashes()
        # A deleted folder arrives as one event: every key under it is gone.
        gone = [
            known_key
            for key in keys
            if not (self.source.root / key).exists()
            for known_key in known
            if known_key == key or known_key.startswith(f"{key}/")
        ]
        try:
            report = self.indexer.update(present)
            self.indexer.remove(gone, report)
        except Exception:
            logger.exception("watch: applying %d changed files failed", len(keys))
            return
        logger.info("watch: %s", report.summary())
