"""Indexing: keep the vector store equal to the gallery.

Delivery is at-least-once everywhere (a re-run, a watcher event twice, an S3 notification
redelivered), so every operation here is idempotent: an image's id is its key, an image whose
bytes (content hash) and tags are both unchanged is skipped, and removing an id that is gone
already does nothing. A change of tags alone re-indexes the image: tags filter searches, so a
stale tag would show or hide it wrongly.

A key no store can hold (a file name whose bytes are not UTF-8) is recorded as failed and left
out before anything reaches the store: one such file must not fail the commit of the others.

With `regions=True` each image also gets region vectors: its suggested fragments (boxes from the
same forward pass's activation map, lookalike.proposals), cropped and embedded, so that a query
showing one object finds the photos where that object is only a part. Unchanged images are
still skipped, so turning regions on for a gallery means `lookalike reindex --regions`.

Progress is reported through a callback rather than drawn: this module ships to Lambda, where
nobody watches a bar, and the command line draws one from the callback (lookalike.cli).
"""

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from lookalike.embedding import Embedder
from lookalike.errors import LookalikeError, NotFoundError
from lookalike.images import SNIFF_BYTES, is_image, load_image
from lookalike.proposals import propose
from lookalike.sources import ImageSource
from lookalike.stores.base import MAX_REGIONS, StoredImage, VectorStore, unstorable_reason

# Committing every few hundred images bounds the work a crash can lose to one batch: a re-run
# skips everything committed before it.
COMMIT_EVERY = 512
# Fragments covering more of the image than this are left out: the whole-image vector already
# describes them (measured with `python -m lab bench region_vectors`, docs/FRAGMENTS.md).
REGION_MAX_AREA = 0.5

# Called with (keys done, keys in all): once before the first batch, so that a bar shows its
# total while the model warms up, then after each batch.
ProgressCallback = Callable[[int, int], None]


@dataclass
class IndexReport:
    indexed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    not_images: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [
            f"indexed {len(self.indexed)}, unchanged {len(self.unchanged)}, removed {len(self.removed)}, "
            f"failed {len(self.failed)}, not images {len(self.not_images)}"
        ]
        # A key that is not UTF-8 is printed escaped: a strict stream (a pipe, a log) would refuse it.
        lines += [
            f"  failed {key.encode('utf-8', 'backslashreplace').decode()}: {reason}"
            for key, reason in sorted(self.failed.items())
        ]
        return "\n".join(lines)


class Indexer:
    """Applies gallery changes (keys added, changed or removed) to a store."""

    def __init__(
        self,
        source: ImageSource,
        embedder: Embedder,
        store: VectorStore,
        batch_size: int = 32,
        regions: bool = False,
    ) -> None:
        if regions and not embedder.has_activation_maps:
            raise LookalikeError(
                "region vectors need the model's activation output: rebuild it with `python -m model_export.export_onnx`"
            )
        self.source = source
        self.embedder = embedder
        self.store = store
        self.batch_size = batch_size
        self.regions = regions
        store.check_model_version(embedder.info.version)

    def sync(self, on_progress: ProgressCallback | None = None) -> IndexReport:
        """Make the store hold exactly the source's images: add, re-embed, remove."""
        keys = list(self.source.keys())
        report = self.update(keys, on_progress=on_progress)
        gone = sorted(set(self.store.content_hashes()) - set(keys))
        self.remove(gone, report)
        return report

    def update(
        self, keys: Sequence[str], report: IndexReport | None = None, on_progress: ProgressCallback | None = None
    ) -> IndexReport:
        """Index these keys (new or changed); keys whose file vanished are removed."""
        report = report or IndexReport()
        keys = self._storable(keys, report)
        if on_progress:
            on_progress(0, len(keys))
        pending = 0
        for start in range(0, len(keys), self.batch_size):
            batch = keys[start : start + self.batch_size]
            # Only this batch's hashes: on OpenSearch, listing every image for each S3 event
            # would cost a scan of the whole index.
            known = {image.id: image for image in self.store.get(batch) if image is not None}
            pending += self._update_batch(batch, known, report)
            if on_progress:
                on_progress(start + len(batch), len(keys))
            if pending >= COMMIT_EVERY:
                self.store.persist()
                pending = 0
        self.store.persist()
        return report

    def remove(self, keys: Iterable[str], report: IndexReport | None = None) -> IndexReport:
        report = report or IndexReport()
        # A key no store can hold was never stored: there is nothing to remove.
        keys = [key for key in keys if unstorable_reason(key) is None]
        if keys:
            self.store.delete(keys)
            self.store.persist()
            report.removed.extend(keys)
        return report

    @staticmethod
    def _storable(keys: Sequence[str], report: IndexReport) -> list[str]:
        """The keys a store can hold; the others go to `report.failed` with the reason."""
        storable = []
        for key in keys:
            reason = unstorable_reason(key)
            if reason is None:
                storable.append(key)
            else:
                report.failed[key] = f"cannot be stored: the name {reason}"
        return storable

    def _update_batch(self, keys: Sequence[str], known: dict[str, StoredImage], report: IndexReport) -> int:
        ready: dict[str, tuple[str, object]] = {}
        tags: dict[str, dict[str, str]] = {}
        stale: list[str] = []
        for key in keys:
            try:
                data = self.source.read(key)
            except NotFoundError:
                stale.append(key)
                continue
            except OSError as error:
                report.failed[key] = f"cannot read: {error}"
                continue
            if not is_image(data[:SNIFF_BYTES]):
                report.not_images.append(key)
                stale.append(key)
                continue
            content_hash = hashlib.sha256(data).hexdigest()
            stored = known.get(key)
            if stored is not None and stored.content_hash == content_hash:
                tags[key] = self.source.tags(key)
                if dict(stored.tags) == tags[key]:
                    report.unchanged.append(key)
                    continue
            try:
                ready[key] = (content_hash, load_image(data, min_side=self.embedder.info.input_size))
            except LookalikeError as error:
                report.failed[key] = str(error)
                stale.append(key)
        stale = [key for key in stale if key in known]
        if stale:
            self.store.delete(stale)
            report.removed.extend(stale)
        if not ready:
            return len(stale)
        keys_ready = list(ready)
        images = [image for _, image in ready.values()]
        regions = None
        if self.regions:
            vectors, maps = self.embedder.embed_images_with_maps(images, batch_size=self.batch_size)
            regions = self._region_vectors(images, maps)
        else:
            vectors = self.embedder.embed_images(images, batch_size=self.batch_size)
        self.store.upsert(
            keys_ready,
            vectors,
            [content_hash for content_hash, _ in ready.values()],
            [tags[key] if key in tags else self.source.tags(key) for key in keys_ready],
            regions=regions,
        )
        report.indexed.extend(keys_ready)
        return len(ready) + len(stale)

    def _region_vectors(self, images: list[Image.Image], maps: np.ndarray) -> list[np.ndarray | None]:
        """Per image, its fragments' vectors (None without one), all crops embedded together."""
        crops, counts = [], []
        for image, activation in zip(images, maps):
            proposals = propose(activation, image.width, image.height, MAX_REGIONS, max_area=REGION_MAX_AREA)
            crops += [image.crop((p.box.x0, p.box.y0, p.box.x1, p.box.y1)) for p in proposals]
            counts.append(len(proposals))
        vectors = self.embedder.embed_images(crops, batch_size=self.batch_size)
        bounds = np.cumsum([0, *counts])
        return [vectors[start:stop] if stop > start else None for start, stop in zip(bounds, bounds[1:])]
