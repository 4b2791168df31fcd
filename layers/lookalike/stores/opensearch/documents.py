"""How the gallery maps onto OpenSearch documents, and the bodies of the requests that carry them.

- One document per image, id `document_id(image_id)` (sha256 of the key: any key, 64 ASCII
  bytes, under the 512-byte `_id` limit of OpenSearch's bulk API), and one per region vector,
  `<doc id>#r<n>`. All carry `image_id`; only the whole-image document (`region` 0) carries the
  content hash and tags.
- The vector field is a faiss `hnsw` knn_vector with `innerproduct` on vectors we normalize, at
  compression 1x, so the score is exact and maps back to the cosine (`cosine_from_score`).
- Tags are `name`/`value` tokens in a keyword field, filtered INSIDE the knn clause: efficient
  filtering returns k hits whenever k documents match (OpenSearch docs, "Efficient k-NN
  filtering"); a post-filter could return fewer.
- A search asks for k * (1 + MAX_REGIONS) documents with size = k: faiss' `k` is per segment and
  `size` caps the total (OpenSearch docs, "Approximate k-NN search", "The number of returned
  results"), and that many documents always hold k distinct images.
- The block list lives in its own small index of one document per blocked image.
"""

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from lookalike.errors import InvalidParameterError
from lookalike.knn import KnnMethod
from lookalike.stores.base import MAX_REGIONS

VECTOR_FIELD = "embedding"
# `k` of a knn query (OpenSearch docs, "k-NN query": 1 to 10,000) and `size` of a search (the
# index.max_result_window default) both stop at 10,000.
K_MAX = 10_000

INDEX_PROPERTIES = {
    "image_id": {"type": "keyword"},
    "region": {"type": "integer"},
    "content_hash": {"type": "keyword"},
    "tag_tokens": {"type": "keyword"},
    "tags": {"type": "object", "enabled": False},
}
BLOCKLIST_PROPERTIES = {"image_id": {"type": "keyword"}}


@dataclass(frozen=True)
class ImageWrite:
    """One image's pending upsert: what its documents will hold."""

    vector: np.ndarray
    content_hash: str
    tags: dict[str, str]
    regions: np.ndarray  # (r, dim), r may be 0


def document_id(image_id: str) -> str:
    """The one place a gallery key becomes a document id: deterministic, any key, 64 bytes."""
    return hashlib.sha256(image_id.encode("utf-8")).hexdigest()


def region_document_id(image_id: str, region: int) -> str:
    return f"{document_id(image_id)}#r{region}"


def tag_token(name: str, value: str) -> str:
    """One keyword per tag; JSON keeps any name or value apart from the other (`a=b` could not)."""
    return json.dumps([name, value], ensure_ascii=False, separators=(",", ":"))


def cosine_from_score(score: float) -> float:
    """Invert faiss' innerproduct score: `1 + ip` for ip > 0, `1 / (1 - ip)` otherwise.

    OpenSearch docs, "Spaces". Both branches meet at score 1 (ip 0); for unit vectors the score
    lies in [0.5, 2].
    """
    score = float(score)
    return score - 1.0 if score >= 1.0 else 1.0 - 1.0 / score


def index_body(dim: int, method: KnnMethod, model_version: str | None) -> dict:
    """Settings and mapping of the vector index (`PUT /<index>`); `_meta` records what its vectors are."""
    meta = {"dim": dim}
    if model_version is not None:
        meta["model_version"] = model_version
    vector = {
        "type": "knn_vector",
        "dimension": dim,
        "method": method.opensearch_method("innerproduct"),
        # Serverless NextGen vector collections default to 32x (AWS, "Working with vector search
        # collections") and newer OpenSearch versions may too: only 1x scores are exact, so the
        # scores map back to cosines.
        "compression_level": "1x",
    }
    return {
        "settings": method.opensearch_index_settings(),
        "mappings": {"_meta": meta, "properties": {VECTOR_FIELD: vector, **INDEX_PROPERTIES}},
    }


def knn_query(query: np.ndarray, fetch: int, tags: Mapping[str, str] | None) -> dict:
    """The search body: `k` and `size` equal, the tag filter inside the knn clause."""
    clause: dict = {"vector": query.tolist(), "k": fetch}
    if tags:
        for name, value in tags.items():
            if not isinstance(name, str) or not isinstance(value, str):
                raise InvalidParameterError(f"tags must map strings to strings, got {dict(tags)!r}")
        clause["filter"] = {
            "bool": {"filter": [{"term": {"tag_tokens": tag_token(n, v)}} for n, v in sorted(tags.items())]}
        }
    return {"size": fetch, "_source": ["image_id"], "query": {"knn": {VECTOR_FIELD: clause}}}


def document_actions(index: str, writes: Mapping[str, ImageWrite | None]) -> Iterator[dict]:
    """Bulk actions that leave each image's documents as `writes` says (None: deleted).

    Every action is an index or a delete by a fixed id, so sending them again converges.
    """
    for image_id, change in writes.items():
        doc_id = document_id(image_id)
        if change is None:
            yield {"_op_type": "delete", "_index": index, "_id": doc_id}
            kept = 0
        else:
            tokens = [tag_token(name, value) for name, value in sorted(change.tags.items())]
            source = {
                "image_id": image_id,
                "region": 0,
                "content_hash": change.content_hash,
                "tags": change.tags,
                "tag_tokens": tokens,
                VECTOR_FIELD: change.vector.tolist(),
            }
            yield {"_op_type": "index", "_index": index, "_id": doc_id, "_source": source}
            for number, row in enumerate(change.regions, start=1):
                region = {"image_id": image_id, "region": number, "tag_tokens": tokens, VECTOR_FIELD: row.tolist()}
                yield {
                    "_op_type": "index",
                    "_index": index,
                    "_id": region_document_id(image_id, number),
                    "_source": region,
                }
            kept = len(change.regions)
        for number in range(kept + 1, MAX_REGIONS + 1):
            yield {"_op_type": "delete", "_index": index, "_id": region_document_id(image_id, number)}


def blocklist_actions(index: str, blocks: Mapping[str, bool]) -> Iterator[dict]:
    """Bulk actions that block (True) or unblock (False) each image of `blocks`."""
    for image_id, blocked in blocks.items():
        action = {"_index": index, "_id": document_id(image_id)}
        if blocked:
            yield {**action, "_op_type": "index", "_source": {"image_id": image_id}}
        else:
            yield {**action, "_op_type": "delete"}
