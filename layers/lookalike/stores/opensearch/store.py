"""The OpenSearch store: the VectorStore interface over an OpenSearch k-NN index.

Construct it (the Lambda functions do this from OPENSEARCH_ENDPOINT / OPENSEARCH_SERVICE /
OPENSEARCH_INDEX / KNN_*):

    OpenSearchStore.from_endpoint(endpoint: str, index: str = "lookalike", *, auth=None,
                                  serverless: bool = False, method: KnnMethod | None = None,
                                  dim: int | None = None, model_version: str | None = None)

or pass a ready client (`client.build_client`): `OpenSearchStore(client, index, ..., serverless=...)`.
An AWS endpoint's store, SigV4-signed, comes from `lookalike.aws.sigv4.signed_store`.
How images become documents and requests is `documents`' business (docs/OPENSEARCH.md has the
whole story); here:
- The block list lives in its own small index (`<index>-blocklist`), so a new index for a new
  model keeps it; `_meta` of the mapping holds the model version and the dimension.
- Writes are buffered and sent at `persist()` as bulk requests, coalesced per image (the last
  write wins). A bulk request is not a transaction: a failed `persist` keeps the buffer, and
  sending it again converges because every action is an idempotent index or delete by fixed id.

Serverless (AWS, "Working with vector search collections"): NextGen vector collections accept
custom document ids, which is what makes re-indexing idempotent, so the store needs one; Classic
vector collections reject them ("Document ID is not supported in create/index operation
request") and the store says so. Serverless refreshes on its own schedule (10 s on NextGen) and
rejects `refresh=true` and `_refresh`, so a serverless store never asks for a refresh: writes
become searchable within that interval.

Methods: hnsw only. `flat` is FAISS-only (OpenSearch's faiss engine has no exact method); ivf and
pq need OpenSearch's training API and a model_id; KnnMethod.opensearch_method refuses all three.
"""

import threading
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
from opensearchpy import OpenSearch, RequestError, helpers

from lookalike.errors import InvalidParameterError, LookalikeError
from lookalike.knn import KnnMethod
from lookalike.stores.base import (
    MAX_REGIONS,
    Hit,
    ModelVersionMismatchError,
    check_ids,
    StoredImage,
    unit_rows,
    upsert_batch,
)
from lookalike.stores.opensearch.client import build_client
from lookalike.stores.opensearch.documents import (
    BLOCKLIST_PROPERTIES,
    K_MAX,
    VECTOR_FIELD,
    ImageWrite,
    blocklist_actions,
    cosine_from_score,
    document_actions,
    document_id,
    index_body,
    knn_query,
)

DEFAULT_INDEX = "lookalike"
SCAN_PAGE = 1_000
# One bulk request stays well under the smallest request-size limits (10 MiB on the smallest
# managed instance types and on Serverless bulk requests); a 1280-d vector is ~25 KiB of JSON.
BULK_CHUNK_BYTES = 5 * 2**20
BULK_CHUNK_ACTIONS = 500
CUSTOM_ID_REFUSED = "Document ID is not supported"


class StoreWriteError(LookalikeError):
    """OpenSearch refused part of a write; the buffered writes are kept for the next `persist`."""

    status = 502


class OpenSearchStore:
    """A VectorStore over one OpenSearch index (plus its block-list index).

    `method` (hnsw; default KnnMethod(name="hnsw")) and `dim` shape the index when this store
    creates it; an existing index keeps its own mapping. `serverless` (a Serverless collection)
    stops the store from asking for refreshes, which Serverless rejects. Reads see what is
    persisted (and, on Serverless, refreshed); safe to share between threads.
    """

    def __init__(
        self,
        client: OpenSearch,
        index: str = DEFAULT_INDEX,
        *,
        method: KnnMethod | None = None,
        dim: int | None = None,
        model_version: str | None = None,
        serverless: bool = False,
        blocklist_index: str | None = None,
    ) -> None:
        self.client = client
        self.index = index
        self.blocklist_index = blocklist_index or f"{index}-blocklist"
        self.method = method or KnnMethod(name="hnsw")
        self.method.opensearch_method()  # refuses flat, ivf and pq here, not at the first write
        self.serverless = serverless
        self._lock = threading.RLock()
        self._pending: dict[str, ImageWrite | None] = {}
        self._pending_blocks: dict[str, bool] = {}
        self._blocklist_ready = False
        self._committed_blocks: set[str] | None = None
        self._index_exists = False
        self._dim = dim
        self._model_version = model_version
        self._meta_dirty = model_version is not None
        self._reload_meta()

    @classmethod
    def from_endpoint(
        cls,
        endpoint: str,
        index: str = DEFAULT_INDEX,
        *,
        auth=None,
        serverless: bool = False,
        method: KnnMethod | None = None,
        dim: int | None = None,
        model_version: str | None = None,
    ) -> "OpenSearchStore":
        """The store at an endpoint URL, its requests signed by `auth` (default: basic auth from the URL)."""
        client = build_client(endpoint, auth=auth)
        return cls(client, index, method=method, dim=dim, model_version=model_version, serverless=serverless)

    # -- the VectorStore interface ------------------------------------------------------------

    @property
    def dim(self) -> int | None:
        return self._dim

    @property
    def model_version(self) -> str | None:
        return self._model_version

    def upsert(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        content_hashes: Sequence[str],
        tags: Sequence[Mapping[str, str]] | None = None,
        regions: Sequence[np.ndarray | None] | None = None,
    ) -> None:
        batch = upsert_batch(ids, vectors, content_hashes, tags, regions)
        dim = batch.vectors.shape[1]
        with self._lock:
            self._check_dim(dim)
            self._dim = dim
            for change in zip(batch.ids, batch.vectors, batch.content_hashes, batch.tags, batch.regions):
                self._pending[change[0]] = ImageWrite(*change[1:])

    def delete(self, ids: Sequence[str]) -> None:
        with self._lock:
            self._pending.update(dict.fromkeys(check_ids(ids)))

    def get(self, ids: Sequence[str]) -> list[StoredImage | None]:
        ids = list(ids)
        if not ids or not self._index_exists:
            return [None] * len(ids)
        found: dict[str, StoredImage] = {}
        for start in range(0, len(ids), SCAN_PAGE):
            chunk = [{"_id": document_id(image_id), "_source": True} for image_id in ids[start : start + SCAN_PAGE]]
            for doc in self.client.mget(index=self.index, body={"docs": chunk})["docs"]:
                if doc.get("found"):
                    source = doc["_source"]
                    found[source["image_id"]] = StoredImage(
                        source["image_id"],
                        np.asarray(source[VECTOR_FIELD], dtype=np.float32),
                        source["content_hash"],
                        dict(source.get("tags", {})),
                    )
        return [found.get(image_id) for image_id in ids]

    def search(self, queries: np.ndarray, k: int, tags: Mapping[str, str] | None = None) -> list[list[Hit]]:
        """Beyond K_MAX (OpenSearch's largest k and size) it returns at most K_MAX documents' images."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InvalidParameterError(f"k must be a positive integer, got {k!r}")
        if self._dim is None or not self._index_exists:
            return [[] for _ in range(len(np.atleast_2d(queries)))]
        queries = unit_rows(queries, "queries", self._dim)
        fetch = min(int(k) * (1 + MAX_REGIONS), K_MAX)
        results = []
        for query in queries:
            response = self.client.search(index=self.index, body=knn_query(query, fetch, tags))
            best: dict[str, Hit] = {}
            for hit in response["hits"]["hits"]:
                image_id = hit["_source"]["image_id"]
                if image_id not in best:  # hits come best first: the first is the image's best vector
                    best[image_id] = Hit(image_id, cosine_from_score(hit["_score"]))
            results.append(list(best.values())[: int(k)])
        return results

    def count(self) -> int:
        if not self._index_exists:
            return 0
        return int(self.client.count(index=self.index, body={"query": {"term": {"region": 0}}})["count"])

    def content_hashes(self) -> dict[str, str]:
        if not self._index_exists:
            return {}
        query = {"term": {"region": 0}}
        return {doc["image_id"]: doc["content_hash"] for doc in self._scan(self.index, query, ["content_hash"])}

    def ids_with_hash(self, content_hash: str) -> list[str]:
        if not self._index_exists:
            return []
        query = {"bool": {"filter": [{"term": {"region": 0}}, {"term": {"content_hash": content_hash}}]}}
        return [doc["image_id"] for doc in self._scan(self.index, query, [])]

    def block(self, ids: Sequence[str]) -> None:
        with self._lock:
            self._pending_blocks.update(dict.fromkeys(check_ids(ids), True))

    def unblock(self, ids: Sequence[str]) -> None:
        with self._lock:
            self._pending_blocks.update(dict.fromkeys(check_ids(ids), False))

    def blocked(self) -> set[str]:
        """The persisted block list as last read (see `refresh`), with this instance's changes."""
        with self._lock:
            if self._committed_blocks is None:
                self._committed_blocks = self._read_blocked()
            added = {image_id for image_id, blocked in self._pending_blocks.items() if blocked}
            return (self._committed_blocks | added) - (self._pending_blocks.keys() - added)

    def check_model_version(self, model_version: str) -> None:
        with self._lock:
            if self._model_version not in (None, model_version):
                raise ModelVersionMismatchError(
                    f"the OpenSearch index {self.index!r} holds vectors of model version {self._model_version!r}, "
                    f"not {model_version!r}: index the gallery into a new index (OPENSEARCH_INDEX) or delete this one"
                )
            if self._model_version is None:
                self._model_version = model_version
                self._meta_dirty = True

    def refresh(self) -> bool:
        """Re-read the block list, and the index's metadata while it can still change."""
        with self._lock:
            before = (self._index_exists, self._dim, self._model_version, self._committed_blocks)
            if not self._index_exists or self._model_version is None:
                self._reload_meta()
            self._committed_blocks = self._read_blocked()
            return before != (self._index_exists, self._dim, self._model_version, self._committed_blocks)

    def persist(self) -> None:
        """Send the buffered writes; on a managed cluster, refresh so that searches see them."""
        with self._lock:
            touched = []
            if self._meta_dirty or self._pending or not self._index_exists:
                if self._write_meta():
                    touched.append(self.index)
            if self._pending and self._index_exists:  # without the index, all of them are deletes
                self._bulk(document_actions(self.index, self._pending))
            self._pending.clear()
            if self._pending_blocks:
                if not self._blocklist_ready:
                    self._ensure_index(self.blocklist_index, {"properties": BLOCKLIST_PROPERTIES})
                    self._blocklist_ready = True
                self._bulk(blocklist_actions(self.blocklist_index, self._pending_blocks))
                self._committed_blocks = self.blocked()
                self._pending_blocks.clear()
                touched.append(self.blocklist_index)
            if touched and not self.serverless:
                self.client.indices.refresh(index=",".join(touched))

    # -- talking to OpenSearch ---------------------------------------------------------------------

    def _bulk(self, actions: Iterator[dict]) -> None:
        """Bulk requests; a delete of a missing document (404 per item, OpenSearch docs, "Bulk") is not a failure."""
        _, errors = helpers.bulk(
            self.client,
            actions,
            chunk_size=BULK_CHUNK_ACTIONS,
            max_chunk_bytes=BULK_CHUNK_BYTES,
            raise_on_error=False,
        )
        failures = [
            item for error in errors for op, item in error.items() if not (op == "delete" and item["status"] == 404)
        ]
        if not failures:
            return
        reasons = sorted(
            {f"{item['status']} {item.get('error', {}).get('reason', item.get('error'))}" for item in failures}
        )
        message = f"OpenSearch refused {len(failures)} write(s) to {failures[0]['_index']!r}: {'; '.join(reasons[:3])}"
        if any(CUSTOM_ID_REFUSED in reason for reason in reasons):
            message += (
                ". This is a Serverless collection that refuses custom document ids (a Classic vector "
                "collection): the store needs them for idempotent writes; use a NextGen vector collection "
                "or a managed domain"
            )
        raise StoreWriteError(message)

    def _scan(self, index: str, query: dict, fields: list[str]) -> Iterator[dict]:
        """Every matching document's image_id and `fields`, paged by search_after on image_id.

        image_id is unique among the documents scanned, so paging after the last one seen returns
        each document present throughout exactly once, without a scroll or a point in time (AWS
        recommends search_after for paging on Serverless). A missing index holds nothing
        (ignore=404 also keeps it out of the log).
        """
        body: dict = {
            "size": SCAN_PAGE,
            "query": query,
            "_source": ["image_id", *fields],
            "sort": [{"image_id": "asc"}],
        }
        while True:
            response = self.client.search(index=index, body=body, ignore=404)
            if response.get("status") == 404:
                return
            hits = response["hits"]["hits"]
            yield from (hit["_source"] for hit in hits)
            if len(hits) < SCAN_PAGE:
                return
            body["search_after"] = hits[-1]["sort"]

    def _read_blocked(self) -> set[str]:
        return {doc["image_id"] for doc in self._scan(self.blocklist_index, {"match_all": {}}, [])}

    def _load_meta(self) -> None:
        response = self.client.indices.get_mapping(index=self.index, ignore=404)
        self._index_exists = self.index in response
        if not self._index_exists:
            return
        mapping = response[self.index]["mappings"]
        self._dim = int(mapping["properties"][VECTOR_FIELD]["dimension"])
        self._model_version = mapping.get("_meta", {}).get("model_version")
        self._meta_dirty = False

    def _reload_meta(self) -> None:
        """Re-read the index's metadata, keeping this instance's dimension and model version checks."""
        dim, version = self._dim, self._model_version if self._meta_dirty else None
        self._load_meta()
        if dim is not None:
            self._check_dim(dim)
            self._dim = self._dim or dim
        if version is not None:
            self.check_model_version(version)

    def _write_meta(self) -> bool:
        """Create the index (once the dimension is known) or record the model version in `_meta`."""
        if not self._index_exists:
            if self._dim is None:
                return False
            if self._ensure_index(self.index, **index_body(self._dim, self.method, self._model_version)):
                self._index_exists = True
                self._meta_dirty = False
            else:
                self._reload_meta()  # another writer created it first: its mapping wins
        if self._meta_dirty:
            current = self.client.indices.get_mapping(index=self.index)[self.index]["mappings"].get("_meta", {})
            if current.get("model_version") not in (None, self._model_version):
                raise ModelVersionMismatchError(
                    f"another writer recorded model version {current['model_version']!r} in {self.index!r} "
                    f"first, not {self._model_version!r}"
                )
            self.client.indices.put_mapping(
                index=self.index, body={"_meta": {**current, "model_version": self._model_version}}
            )
            self._meta_dirty = False
        return True

    def _ensure_index(self, index: str, mappings: dict, settings: dict | None = None) -> bool:
        """Create `index`; False if it existed (created concurrently, or by an earlier run).

        ignore=400 keeps the expected "already exists" out of opensearch-py's warning log.
        """
        body = {"mappings": mappings} if settings is None else {"settings": settings, "mappings": mappings}
        response = self.client.indices.create(index=index, body=body, ignore=400)
        error = response.get("error")
        if error is None:
            return True
        if isinstance(error, dict) and error.get("type") == "resource_already_exists_exception":
            return False
        raise RequestError(400, error.get("type", error) if isinstance(error, dict) else error, response)

    # -- validation ------------------------------------------------------------------------------

    def _check_dim(self, dim: int) -> None:
        if self._dim is not None and dim != self._dim:
            raise InvalidParameterError(f"the OpenSearch index {self.index!r} holds {self._dim}-d vectors, got {dim}-d")
