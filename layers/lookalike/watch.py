"""The local drop folder's notifications: the stand-in for S3 events on the embedded default.

watchdog reports file-system events; they are collected for a short quiet period (an editor or
a copy writes a file in several steps) and then applied through the same idempotent Indexer that
`lookalike index` uses, so a burst of events for one file costs one embedding. A changed tags
sidecar (`.tags.json`) touches every image of its folder: their tags, which filter searches,
may have changed with it.

Only events that say something was written, created, moved or deleted count. watchdog also
reports a file being opened and closed unwritten: taking those for changes would make every read
of the folder (a copy, a backup, GET /images, the indexer's own read of the file) start another
pass, which reads the file again, forever.
"""

import logging
import threading
from pathlib import Path

from watchdog.events import (
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from lookalike.indexing import Indexer
from lookalike.sources import TAGS_FILENAME, FolderSource

QUIET_SECONDS = 0.5
# A pass that failed (a full or read-only disk: bad files are recorded by the indexer, not raised)
# is tried again after this long, its keys kept, so that no drop is lost while the disk recovers.
RETRY_SECONDS = 5.0
# "closed" is a file closed after writing (closed unwritten is another event type).
CHANGE_EVENTS = frozenset((EVENT_TYPE_CREATED, EVENT_TYPE_MODIFIED, EVENT_TYPE_MOVED, EVENT_TYPE_DELETED, EVENT_TYPE_CLOSED))

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
        if event.event_type not in CHANGE_EVENTS or (event.is_directory and event.event_type != EVENT_TYPE_DELETED):
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
            if touched and not self._stopping.is_set() and not self._apply(touched):
                with self._lock:
                    self._touched |= set(touched)
                self._stopping.wait(RETRY_SECONDS)
                self._wakeup.set()

    def _apply(self, keys: list[str]) -> bool:
        """Whether the pass was applied; a failed one is retried by the loop."""
        # Every key that is not a folder goes to the indexer, whatever is at its path now: it
        # indexes a regular file and removes the id of anything else (a file gone, or replaced
        # by a FIFO or a device, which the source refuses to read).
        files = [key for key in keys if not (self.source.root / key).is_dir()]
        known = self.indexer.store.content_hashes()
        # A deleted folder arrives as one event: every key under it is gone.
        gone = [
            known_key
            for key in keys
            if not (self.source.root / key).exists()
            for known_key in known
            if known_key.startswith(f"{key}/")
        ]
        try:
            report = self.indexer.update(files)
            self.indexer.remove(gone, report)
        except Exception:
            logger.exception("watch: applying %d changed files failed; retrying in %g s", len(keys), RETRY_SECONDS)
            return False
        logger.info("watch: %s", report.summary())
        return True
