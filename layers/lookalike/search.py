"""Search: query bytes (and an optional crop box) in, ranked gallery images out.

Queries are decoded one by one, so that one unreadable query fails alone, and embedded in
batches. The store is asked for more candidates than `k` whenever re-ranking removes some, until
exactly `min(k, eligible)` results remain.
"""

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from lookalike.embedding import Embedder
from lookalike.errors import InvalidParameterError, LookalikeError
from lookalike.images import FULL_DECODE_PIXELS, CropBox, load_image
from lookalike.ranking import RankingPolicy, rerank
from lookalike.stores.base import Hit, VectorStore

MAX_K = 1000


@dataclass(frozen=True)
class Query:
    data: bytes
    box: CropBox | None = None
    # What a format without reduced decoding may cost: a stranger's bytes get the request budget;
    # a gallery image ("more like this") was decoded whole at indexing and keeps the gallery's limit.
    full_decode_pixels: int = FULL_DECODE_PIXELS

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit] = field(default_factory=list)
    error: LookalikeError | None = None


class SearchService:
    """The whole query pipeline over one embedder and one store; safe to share between threads.

    Refuses (ModelVersionMismatchError) a store built by another model version: its vectors
    would be compared with the query's as if alike and rank nonsense without any error.
    """

    def __init__(
        self,
        embedder: Embedder,
        store: VectorStore,
        policy: RankingPolicy = RankingPolicy(),
        batch_size: int = 32,
    ) -> None:
        store.check_model_version(embedder.info.version)
        self.embedder = embedder
        self.store = store
        self.policy = policy
        self.batch_size = batch_size

    def search(
        self,
        queries: Sequence[Query],
        k: int = 10,
        tags: Mapping[str, str] | None = None,
        dedupe: bool = True,
    ) -> list[SearchResult]:
        """One result per query, in order; a query that cannot be read carries its error."""
        if not 1 <= k <= MAX_K:
            raise InvalidParameterError(f"k must be between 1 and {MAX_K}, got {k}")
        results: list[SearchResult] = []
        for start in range(0, len(queries), self.batch_size):
            results.extend(self._search_batch(queries[start : start + self.batch_size], k, tags, dedupe))
        return results

    def search_one(
        self, query: Query, k: int = 10, tags: Mapping[str, str] | None = None, dedupe: bool = True
    ) -> list[Hit]:
        (result,) = self.search([query], k=k, tags=tags, dedupe=dedupe)
        if result.error is not None:
            raise result.error
        return result.hits

    def _search_batch(
        self, queries: Sequence[Query], k: int, tags: Mapping[str, str] | None, dedupe: bool
    ) -> list[SearchResult]:
        images, errors = {}, {}
        for position, query in enumerate(queries):
            try:
                images[position] = load_image(
                    query.data, query.box, min_side=self.embedder.info.input_size, full_decode_pixels=query.full_decode_pixels
                )
            except LookalikeError as error:
                errors[position] = error
        vectors = dict(zip(images, self.embedder.embed_images(list(images.values())))) if images else {}
        return [
            SearchResult(error=errors[position])
            if position in errors
            else SearchResult(self._rank(vectors[position], query.content_hash, k, tags, dedupe))
            for position, query in enumerate(queries)
        ]

    def _rank(
        self, vector: np.ndarray, query_hash: str, k: int, tags: Mapping[str, str] | None, dedupe: bool
    ) -> list[Hit]:
        policy = self.policy if dedupe else RankingPolicy(None, self.policy.score_decimals)
        exclude_ids = set(self.store.ids_with_hash(query_hash))
        blocked = self.store.blocked()
        fetch = k + len(exclude_ids) + len(blocked)
        while True:
            (candidates,) = self.store.search(vector[None, :], fetch, tags=tags)
            exhausted = len(candidates) < fetch
            if not exhausted:
                # Candidates tied with the last one may have neighbours beyond the fetch: only
                # those strictly above it are certain, whatever float noise the batch size adds.
                floor = round(candidates[-1].score, policy.score_decimals)
                candidates = [hit for hit in candidates if round(hit.score, policy.score_decimals) > floor]
            vectors = None
            if policy.dedupe_threshold is not None:
                stored = self.store.get([hit.id for hit in candidates])
                vectors = {image.id: image.vector for image in stored if image is not None}
                candidates = [hit for hit in candidates if hit.id in vectors]
            ranked = rerank(
                candidates, k=k, exclude_ids=exclude_ids, blocked=blocked, vectors=vectors, policy=policy
            )
            if len(ranked) == k or exhausted:
                return ranked
            fetch *= 2
