"""Switching the embedded store to another model: re-embed the whole gallery, then swap stores.

Vectors of two models never share a store: their cosines compare unlike things, and a store
refuses an embedder of another version (ModelVersionMismatchError). So a new model means new
vectors for every image, built as a new store generation beside the live one:

1. `<store>.reindex/` is indexed from the gallery with the new model (same k-NN method, the
   block list copied over). A crashed or interrupted reindex resumes there: indexing skips
   what it already committed. A staging store of yet another model is discarded.
2. Files in the store folder that are not the store's own (the gallery record, the event log)
   move into the new store's folder, so that they survive the switch and stay single copies.
3. The folders swap by two renames: `<store>` -> `<store>.previous`, `<store>.reindex` -> `<store>`.
   `<store>.previous` is kept for a rollback (rename it back and serve with the old model)
   until the next reindex replaces it. Should a crash fall between the two renames, finish
   by hand: `mv <store>.reindex <store>`.

Build-then-swap rather than clearing and re-embedding in place: while the new vectors are
computed (minutes to hours for a large gallery) the live store stays complete and consistent
with the old model, a failure leaves it untouched, and the switch itself is two renames.
The cost is disk for both stores while it runs. A running `lookalike serve` keeps answering
from the folder it opened (the old one, now `.previous`) until it is restarted with the new
model; writers (`serve --watch`) must be stopped during a reindex, or their changes since it
started are picked up by a `lookalike index` run after it.
"""

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from lookalike.embedding import Embedder
from lookalike.errors import LookalikeError
from lookalike.indexing import IndexReport, Indexer, ProgressCallback
from lookalike.knn import KnnMethod
from lookalike.sources import ImageSource
from lookalike.stores.base import ModelVersionMismatchError
from lookalike.stores.faiss import FaissStore, is_store_file
from lookalike.stores.faiss.files import META_FILENAME

STAGING_SUFFIX = ".reindex"
PREVIOUS_SUFFIX = ".previous"


@dataclass
class ReindexReport:
    index: IndexReport
    old_version: str | None
    new_version: str
    previous: Path


def staging_path(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + STAGING_SUFFIX)


def previous_path(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + PREVIOUS_SUFFIX)


def reindex(
    store_path: str | Path,
    source: ImageSource,
    embedder: Embedder,
    regions: bool = False,
    on_progress: ProgressCallback | None = None,
) -> ReindexReport:
    """Re-embed `source` with `embedder` into a new store and put it in place of `store_path`."""
    store_path = Path(store_path)
    if not (store_path / META_FILENAME).is_file():
        raise LookalikeError(f"no store at {store_path}: build one with `lookalike index DIR`")
    with FaissStore(store_path) as live:
        old_version, method, blocked = live.model_version, live.method, sorted(live.blocked())
    with _staging_store(staging_path(store_path), method, embedder.info.version) as staging:
        report = Indexer(source, embedder, staging, regions=regions).sync(on_progress=on_progress)
        staging.block(blocked)
        staging.persist()
    _swap(store_path, staging_path(store_path), previous_path(store_path))
    return ReindexReport(report, old_version, embedder.info.version, previous_path(store_path))


def _staging_store(path: Path, method: str | KnnMethod, model_version: str) -> FaissStore:
    try:
        return FaissStore(path, method=method, model_version=model_version)
    except ModelVersionMismatchError:
        shutil.rmtree(path)
        return FaissStore(path, method=method, model_version=model_version)


def _swap(store_path: Path, staging: Path, previous: Path) -> None:
    for entry in store_path.iterdir():
        if not is_store_file(entry.name):
            os.replace(entry, staging / entry.name)
    if previous.exists():
        shutil.rmtree(previous)
    os.rename(store_path, previous)
    os.rename(staging, store_path)
