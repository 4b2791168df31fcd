"""The vector store interface every backend implements (embedded FAISS, OpenSearch).

Ids are the gallery's string keys; backends map them to whatever their index needs in one place.
Writes are buffered and become visible to other processes at `persist()`, all at once.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from lookalike.errors import LookalikeError


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


class VectorStore(Protocol):
    dim: int | None
    model_version: str | None

    def upsert(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        content_hashes: Sequence[str],
        tags: Sequence[Mapping[str, str]] | None = None,
    ) -> None: ...

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
