"""The vector store interface every backend implements (embedded FAISS, OpenSearch).

Ids are the gallery's string keys; backends map them to whatever their index needs in one place.
Writes are buffered and become visible to other processes at `persist()`, all at once.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from lookalike.errors import InvalidParameterError, LookalikeError

# At most this many region vectors (suggested fragments) per image, besides the whole image's.
MAX_REGIONS = 4
# Shorter vectors have no direction to compare: a zero (or all but zero) embedding.
MIN_NORM = 1e-6


@dataclass(frozen=True)
class Hit:
    id: str
    score: float  # cosine similarity, higher is more similar


@dataclass(frozen=True)
class StoredImage:
    id: str
    vector: np.ndarray
    content_hash: str
    tags: Mapping[str, str] = field(default_factory=dict)


class ModelVersionMismatchError(LookalikeError):
    """The store's vectors came from another model: its scores would compare unlike things."""

    status = 409


class StoreUnavailableError(LookalikeError):
    """The store's disk or service refuses writes (full, read-only): the request was fine, the
    write did not happen, and the same request can succeed later."""

    status = 503


class VectorStore(Protocol):
    dim: int | None
    model_version: str | None

    def upsert(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        content_hashes: Sequence[str],
        tags: Sequence[Mapping[str, str]] | None = None,
        regions: Sequence[np.ndarray | None] | None = None,
    ) -> None:
        """`regions`, aligned with ids: None or an (r, dim) array, r <= MAX_REGIONS, of extra vectors
        for that image; search ranks an image by the best of its vectors, and an upsert or delete
        replaces all of them."""

    def delete(self, ids: Sequence[str]) -> None:
        """Unknown ids are ignored (idempotent)."""

    def get(self, ids: Sequence[str]) -> list[StoredImage | None]: ...

    def search(self, queries: np.ndarray, k: int, tags: Mapping[str, str] | None = None) -> list[list[Hit]]:
        """Per query, at most k hits best first; with `tags`, only images carrying all of them."""

    def count(self) -> int: ...

    def content_hashes(self) -> dict[str, str]:
        """id -> sha256 hex, for incremental indexing."""

    def ids_with_hash(self, content_hash: str) -> list[str]: ...

    def block(self, ids: Sequence[str]) -> None:
        """Keep these ids out of results (re-ranking drops them); unknown ids may be blocked ahead."""

    def unblock(self, ids: Sequence[str]) -> None: ...

    def blocked(self) -> set[str]: ...

    def check_model_version(self, model_version: str) -> None:
        """Record the embedder's version in an unversioned store; ModelVersionMismatchError if it differs."""

    def refresh(self) -> bool:
        """Load what another writer committed since; True if anything changed. Cheap when nothing did."""

    def persist(self) -> None:
        """One atomic commit of everything since the last."""


def unstorable_reason(text: object) -> str | None:
    """Why `text` cannot be an id, tag or block list entry; None when it can.

    Every backend keeps ids as UTF-8 (SQLite, OpenSearch, S3 keys), and Python spells a file name
    whose bytes are not UTF-8 with surrogate escapes, which no UTF-8 encoder accepts: such an id
    must be refused before it reaches a store, where it would fail the whole commit. Re-spelling
    it (replacement characters, a hex escape) could give two files one id, so it is not renamed.
    """
    if not isinstance(text, str) or not text:
        return f"must be a non-empty string, got {text!r}"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return f"{text!r} is not valid UTF-8 (a file name with bytes of another encoding?): rename it"
    return None


def check_ids(ids: Sequence[str]) -> list[str]:
    """The ids as a list, or InvalidParameterError naming the first one no store can hold."""
    ids = list(ids)
    for image_id in ids:
        reason = unstorable_reason(image_id)
        if reason is not None:
            raise InvalidParameterError(f"an id {reason}")
    return ids


def unit_rows(rows: np.ndarray, what: str, dim: int | None = None) -> np.ndarray:
    """(n, dim) float32 rows scaled to unit length, so that inner products are cosines."""
    rows = np.asarray(rows, dtype=np.float32)
    if rows.ndim != 2:
        raise InvalidParameterError(f"{what} must be a 2-d array (n, dim), got shape {rows.shape}")
    if dim is not None and rows.shape[1] != dim:
        raise InvalidParameterError(f"the store holds {dim}-d vectors, {what} are {rows.shape[1]}-d")
    if not np.isfinite(rows).all():
        raise InvalidParameterError(f"{what} contain NaN or infinite values")
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    if len(rows) and norms.min() < MIN_NORM:
        raise InvalidParameterError(f"{what} contain a zero vector, which has no direction to compare")
    return np.ascontiguousarray(rows / norms, dtype=np.float32)


@dataclass(frozen=True)
class UpsertBatch:
    """One upsert's arguments, checked the same way by every backend."""

    ids: list[str]
    vectors: np.ndarray  # (n, dim) float32 unit rows
    content_hashes: list[str]
    tags: list[dict[str, str]]
    regions: list[np.ndarray]  # per id, (r, dim) float32 unit rows, 0 <= r <= MAX_REGIONS


def upsert_batch(
    ids: Sequence[str],
    vectors: np.ndarray,
    content_hashes: Sequence[str],
    tags: Sequence[Mapping[str, str]] | None = None,
    regions: Sequence[np.ndarray | None] | None = None,
) -> UpsertBatch:
    """`VectorStore.upsert`'s arguments checked and normalized; the store checks the dimension."""
    ids = check_ids(ids)
    tags = [dict(t) for t in tags] if tags is not None else [{} for _ in ids]
    regions = list(regions) if regions is not None else [None] * len(ids)
    vectors = unit_rows(vectors, "vectors")
    if not len(ids) == len(vectors) == len(content_hashes) == len(tags) == len(regions):
        raise InvalidParameterError(
            f"upsert needs one vector, content hash and tag set per id: got {len(ids)} ids, "
            f"{len(vectors)} vectors, {len(content_hashes)} hashes, {len(tags)} tag sets, {len(regions)} region sets"
        )
    for tag_set in tags:
        if not all(isinstance(key, str) and isinstance(value, str) for key, value in tag_set.items()):
            raise InvalidParameterError(f"tags must map strings to strings, got {tag_set!r}")
        for text in (*tag_set, *tag_set.values()):
            reason = unstorable_reason(text) if text else None
            if reason is not None:
                raise InvalidParameterError(f"a tag {reason}")
    dim = vectors.shape[1]
    none = np.zeros((0, dim), np.float32)
    region_rows = [none if rows is None else unit_rows(rows, "region vectors", dim) for rows in regions]
    for rows in region_rows:
        if len(rows) > MAX_REGIONS:
            raise InvalidParameterError(f"an image has at most {MAX_REGIONS} region vectors, got {len(rows)}")
    return UpsertBatch(ids, vectors, [str(h) for h in content_hashes], tags, region_rows)
