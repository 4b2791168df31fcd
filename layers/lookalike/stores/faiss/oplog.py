"""The embedded store's memory: one committed generation, and this instance's writes since.

Writes are buffered in memory (they are visible to this instance at once) and kept as an
operation log. If another process committed in the meantime, `persist` reloads that generation
and replays the log on top: upserts and deletes are idempotent, so two writers lose nothing.

An operation is a tuple whose first item names it: ("upsert", ids, vectors, content_hashes, tags,
regions), ("delete", ids), ("block", ids), ("unblock", ids), ("dim", dim), ("method", method),
("model_version", version).
"""

from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from lookalike.errors import InvalidParameterError
from lookalike.knn import AUTO, KnnMethod, resolve_method
from lookalike.stores.base import ModelVersionMismatchError


@dataclass
class ImageRecord:
    faiss_id: int
    content_hash: str
    tags: dict[str, str]
    region_ids: tuple[int, ...] = ()

    @property
    def faiss_ids(self) -> tuple[int, ...]:
        return (self.faiss_id, *self.region_ids)


@dataclass
class StoreState:
    """Everything loaded from one generation, plus this instance's uncommitted changes."""

    generation: int = 0
    index_generation: int = 0
    dim: int | None = None
    model_version: str | None = None
    method: str | KnnMethod = AUTO
    active: KnnMethod | None = None
    next_faiss_id: int = 0
    index: faiss.Index | None = None
    records: dict[str, ImageRecord] = field(default_factory=dict)
    by_faiss_id: dict[int, str] = field(default_factory=dict)  # every live vector, regions included
    by_hash: dict[str, set[str]] = field(default_factory=dict)
    by_tag: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    blocked: set[str] = field(default_factory=set)
    tombstones: set[int] = field(default_factory=set)

    def add_record(self, image_id: str, record: ImageRecord) -> None:
        self.records[image_id] = record
        for faiss_id in record.faiss_ids:
            self.by_faiss_id[faiss_id] = image_id
        self.by_hash.setdefault(record.content_hash, set()).add(image_id)
        for pair in record.tags.items():
            self.by_tag.setdefault(pair, set()).add(image_id)


@dataclass(frozen=True)
class WrittenImages:
    """What the log's upserts and deletes touched: the rows a commit rewrites."""

    touched: set[str]
    vectors: dict[str, np.ndarray]  # the last upserted vector of each upserted id
    regions: dict[str, np.ndarray]  # its (r, dim) region vectors


class OperationLog:
    """`state` with this instance's operations applied, and those operations, until a commit.

    Not thread-safe on its own: the store calls it under its lock. `path` names the store in errors.
    """

    def __init__(self, state: StoreState, path: Path) -> None:
        self.state = state
        self.operations: list[tuple] = []
        self.path = path

    def record(self, operation: tuple) -> None:
        """Apply an operation and keep it for the commit; one that raises is not kept."""
        self._apply(operation)
        self.operations.append(operation)

    def rebase(self, committed: StoreState) -> None:
        """Replay the uncommitted operations on a newly loaded generation."""
        self.state = committed
        for operation in self.operations:
            self._apply(operation)

    def clear(self) -> None:
        """Forget the operations: a commit holds them now."""
        self.operations.clear()

    def written_images(self) -> WrittenImages:
        written = WrittenImages(set(), {}, {})
        for operation in self.operations:
            if operation[0] == "upsert":
                written.vectors.update(zip(operation[1], operation[2]))
                written.regions.update(zip(operation[1], operation[5]))
            if operation[0] in ("upsert", "delete"):
                written.touched.update(operation[1])
        return written

    def check_dim(self, dim: int) -> None:
        if self.state.dim is not None and dim != self.state.dim:
            raise InvalidParameterError(f"the store at {self.path} holds {self.state.dim}-d vectors, got {dim}-d")

    def _apply(self, operation: tuple) -> None:
        state = self.state
        kind = operation[0]
        if kind == "upsert":
            _, ids, vectors, hashes, tags, regions = operation
            self.check_dim(vectors.shape[1])
            if state.dim is None:
                state.dim = vectors.shape[1]
            if state.index is None:
                state.active = resolve_method(state.method, 0)
                state.index = new_index(state.dim, state.active)
            latest = {image_id: row for row, image_id in enumerate(ids)}
            self._remove([image_id for image_id in latest if image_id in state.records])
            # Each image's vector, then its regions, under increasing ids (FaissStore._exact_hnsw relies on it).
            rows = [np.concatenate([vectors[row : row + 1], regions[row]]) for row in latest.values()]
            first_id = state.next_faiss_id
            state.next_faiss_id += sum(len(image_rows) for image_rows in rows)
            state.index.add_with_ids(np.concatenate(rows), np.arange(first_id, state.next_faiss_id, dtype=np.int64))
            for (image_id, row), image_rows in zip(latest.items(), rows):
                region_ids = tuple(range(first_id + 1, first_id + len(image_rows)))
                state.add_record(image_id, ImageRecord(first_id, hashes[row], tags[row], region_ids))
                first_id += len(image_rows)
        elif kind == "delete":
            self._remove([image_id for image_id in dict.fromkeys(operation[1]) if image_id in state.records])
        elif kind == "block":
            state.blocked.update(operation[1])
        elif kind == "unblock":
            state.blocked.difference_update(operation[1])
        elif kind == "dim":
            self.check_dim(operation[1])
            state.dim = operation[1]
        elif kind == "method":
            state.method = operation[1]
        elif kind == "model_version":
            if state.model_version not in (None, operation[1]):
                raise ModelVersionMismatchError(
                    f"the store at {self.path} holds vectors of model version {state.model_version!r}, "
                    f"not {operation[1]!r}: index the gallery into a new store (or delete this one)"
                )
            state.model_version = operation[1]

    def _remove(self, ids: list[str]) -> None:
        """Forget these (present) ids; their vectors leave a Flat index and are tombstoned in HNSW."""
        if not ids:
            return
        state = self.state
        faiss_ids = []
        for image_id in ids:
            record = state.records.pop(image_id)
            for faiss_id in record.faiss_ids:
                del state.by_faiss_id[faiss_id]
            _discard(state.by_hash, record.content_hash, image_id)
            for pair in record.tags.items():
                _discard(state.by_tag, pair, image_id)
            faiss_ids.extend(record.faiss_ids)
        if state.active.name == "flat":
            state.index.remove_ids(np.asarray(faiss_ids, dtype=np.int64))
        else:
            state.tombstones.update(faiss_ids)


def new_index(dim: int, method: KnnMethod) -> faiss.Index:
    """An empty index for `method`: FAISS ids map to vectors (IDMap2), scores are inner products."""
    index = faiss.index_factory(dim, f"IDMap2,{method.faiss_factory()}", faiss.METRIC_INNER_PRODUCT)
    if method.name == "hnsw":
        faiss.downcast_index(index.index).hnsw.efConstruction = method.ef_construction
    return index


def _discard(index: dict, key, image_id: str) -> None:
    members = index.get(key)
    if members is not None:
        members.discard(image_id)
        if not members:
            del index[key]
