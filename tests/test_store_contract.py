"""One contract, every backend: what the core may rely on from any VectorStore.

Runs unchanged against the embedded FAISS store, the OpenSearch store over the loopback server
(tests/opensearch_loopback.py), and the OpenSearch store over a real cluster when OPENSEARCH_URL
names one (docs/OPENSEARCH.md says how). Readers open another instance on the same backing
store, so "persisted" means what another process would see.
"""

import os
import uuid

import numpy as np
import pytest

from lookalike.errors import InvalidParameterError
from lookalike.stores.base import MAX_REGIONS, ModelVersionMismatchError
from lookalike.stores.faiss import FaissStore
from lookalike.stores.opensearch import OpenSearchStore, build_client
from tests.support.opensearch_loopback import LoopbackOpenSearch

DIM = 16
# Keys as S3 hands them out: folders, spaces, unicode, a '#' and a key past OpenSearch's 512-byte id limit.
AWKWARD_IDS = ["kitchen/lamp 1.jpg", "café/ünïcode ✓.png", "a#r1", "deep/" + "ß" * 400 + ".jpg"]


def unit_rows(n: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def with_cosine(query: np.ndarray, cosine: float, seed: int, scale: float = 3.0) -> np.ndarray:
    """A vector whose cosine with the unit `query` is exactly `cosine` (up to float32), not unit length."""
    other = np.random.default_rng([seed, 1]).standard_normal(DIM)  # never the query's own seed
    other -= (other @ query) * query
    other /= np.linalg.norm(other)
    return (scale * (cosine * query + np.sqrt(1 - cosine**2) * other)).astype(np.float32)


def hit_ids(hits) -> list[str]:
    return [hit.id for hit in hits]


def real_cluster():
    url = os.environ.get("OPENSEARCH_URL")
    if not url:
        pytest.skip(
            "OPENSEARCH_URL is not set: the contract suite runs against a real OpenSearch cluster only when it "
            "names one (e.g. http://localhost:9200; docs/OPENSEARCH.md)"
        )
    service = os.environ.get("OPENSEARCH_SERVICE") or None
    if service == "aoss":
        pytest.skip("OPENSEARCH_SERVICE=aoss: Serverless makes writes searchable only after its ~10 s refresh")
    return build_client(url, service=service)


@pytest.fixture(params=["faiss", "opensearch-loopback", "opensearch-cluster"])
def open_store(request, tmp_path):
    """Opens (another instance of) one backing store; keyword options go to the constructor."""
    if request.param == "faiss":
        yield lambda **options: FaissStore(tmp_path / "store", **options)
        return
    if request.param == "opensearch-loopback":
        server = LoopbackOpenSearch().start()
        client = build_client(server.url)
        index = "lookalike"
    else:
        server = None
        client = real_cluster()
        index = f"lookalike-test-{uuid.uuid4().hex[:12]}"
    yield lambda **options: OpenSearchStore(client, index, **options)
    if server is None:
        client.indices.delete(index=f"{index},{index}-blocklist", ignore_unavailable=True)
    else:
        server.stop()
        assert not server.failures, server.failures[0]


def fill(store, n: int, seed: int = 0, tags=None) -> tuple[list[str], np.ndarray]:
    ids = [f"img{i:04d}" for i in range(n)]
    vectors = unit_rows(n, seed)
    store.upsert(ids, vectors, [f"hash-{i}" for i in ids], tags)
    return ids, vectors


def test_upsert_get_count_and_awkward_keys(open_store):
    store = open_store()
    ids, vectors = fill(store, 6, tags=[{"n": str(i % 2)} for i in range(6)])
    awkward = unit_rows(len(AWKWARD_IDS), seed=1)
    store.upsert(AWKWARD_IDS, awkward, [f"h{i}" for i in range(len(AWKWARD_IDS))], [{"k": key} for key in AWKWARD_IDS])
    assert open_store().count() == 0  # buffered until persist
    store.persist()
    reader = open_store()
    assert reader.count() == 6 + len(AWKWARD_IDS)
    assert reader.dim == DIM
    images = reader.get([ids[3], "missing", *AWKWARD_IDS])
    assert images[1] is None
    assert (images[0].id, images[0].content_hash, dict(images[0].tags)) == (ids[3], f"hash-{ids[3]}", {"n": "1"})
    np.testing.assert_allclose(images[0].vector, vectors[3], atol=1e-6)
    for image, key, vector in zip(images[2:], AWKWARD_IDS, awkward):
        assert image.id == key and dict(image.tags) == {"k": key}
        np.testing.assert_allclose(image.vector, vector, atol=1e-6)
    assert reader.content_hashes() == {
        **{i: f"hash-{i}" for i in ids},
        **{k: f"h{n}" for n, k in enumerate(AWKWARD_IDS)},
    }
    assert reader.ids_with_hash("h1") == [AWKWARD_IDS[1]]
    (hits,) = reader.search(awkward[3:4], k=1)
    assert hit_ids(hits) == [AWKWARD_IDS[3]]


def test_upserts_and_deletes_are_idempotent(open_store):
    store = open_store()
    ids, vectors = fill(store, 8)
    store.persist()
    fill(store, 8)  # the same batch again: a redelivered message
    store.persist()
    assert open_store().count() == 8
    replacement = unit_rows(1, seed=99)
    store.upsert([ids[0]], replacement, ["new-hash"], [{"v": "2"}])
    store.upsert([ids[0]], replacement, ["new-hash"], [{"v": "2"}])
    store.delete([ids[1], "never-there"])
    store.persist()
    store.delete([ids[1]])
    store.persist()
    reader = open_store()
    assert reader.count() == 7
    assert reader.get([ids[1]]) == [None]
    (image,) = reader.get([ids[0]])
    np.testing.assert_allclose(image.vector, replacement[0], atol=1e-6)
    assert (image.content_hash, dict(image.tags)) == ("new-hash", {"v": "2"})
    assert reader.ids_with_hash(f"hash-{ids[0]}") == []
    (hits,) = reader.search(vectors[:1], k=8)
    assert hit_ids(hits).count(ids[0]) == 1 and ids[1] not in hit_ids(hits)
    assert {h.id: h.score for h in hits}[ids[0]] == pytest.approx(float(replacement[0] @ vectors[0]), abs=1e-5)


def test_scores_are_cosines_on_both_sides_of_zero(open_store):
    store = open_store()
    query = unit_rows(1, seed=5)[0]
    cosines = [0.99, 0.7, 0.25, 0.0, -0.05, -0.4, -0.9, -1.0]
    ids = [f"c{i}" for i in range(len(cosines))]
    store.upsert(ids, np.stack([with_cosine(query, c, seed=i) for i, c in enumerate(cosines)]), ids)
    store.persist()
    (hits,) = open_store().search(query[None, :] * 7, k=len(cosines))  # the query need not be unit length either
    assert hit_ids(hits) == ids
    assert [hit.score for hit in hits] == pytest.approx(cosines, abs=1e-5)


def test_tag_filter_returns_k_whenever_k_images_match(open_store):
    store = open_store()
    tags = [{"colour": "red" if i % 41 == 0 else "blue", "shape": "round" if i % 2 else "square"} for i in range(300)]
    ids, vectors = fill(store, 300, tags=tags)
    store.persist()
    red = [i for i, t in zip(ids, tags) if t["colour"] == "red"]  # 8 of 300, far from most queries
    red_vectors = vectors[[ids.index(i) for i in red]]
    reader = open_store()
    for query in unit_rows(3, seed=6):
        for k in (5, 8, 20):
            (hits,) = reader.search(query[None, :], k=k, tags={"colour": "red"})
            exact = [red[i] for i in np.argsort(-(red_vectors @ query), kind="stable")[:k]]
            assert hit_ids(hits) == exact  # min(k, 8) hits, and only red ones
    (both,) = reader.search(vectors[:1], k=300, tags={"colour": "red", "shape": "round"})
    assert hit_ids(both) and all(tags[ids.index(i)] == {"colour": "red", "shape": "round"} for i in hit_ids(both))
    assert reader.search(vectors[:1], k=5, tags={"colour": "green"}) == [[]]


def test_block_list_persists_and_reaches_other_instances(open_store):
    store = open_store(dim=DIM)
    other = open_store(dim=DIM)
    assert other.blocked() == set() and other.refresh() is False
    store.block(["a", "b", "c/ü"])
    store.unblock(["b"])
    assert store.blocked() == {"a", "c/ü"}
    assert open_store().blocked() == set()
    store.persist()
    assert other.refresh() is True
    assert other.blocked() == {"a", "c/ü"} == open_store().blocked()
    assert other.refresh() is False
    other.unblock(["a"])
    other.persist()
    assert store.refresh() is True and store.blocked() == {"c/ü"}


def test_model_version_is_recorded_and_a_different_one_refused(open_store):
    store = open_store(dim=DIM)
    store.check_model_version("effnet-1")
    store.persist()
    reader = open_store()
    assert reader.model_version == "effnet-1"
    reader.check_model_version("effnet-1")
    with pytest.raises(ModelVersionMismatchError, match="effnet-1"):
        reader.check_model_version("effnet-2")
    with pytest.raises(ModelVersionMismatchError):
        open_store(model_version="effnet-2")


def test_search_edges(open_store):
    store = open_store()
    assert store.search(unit_rows(2), k=5) == [[], []]
    fill(store, 3)
    store.persist()
    assert [len(hits) for hits in open_store().search(unit_rows(2), k=50)] == [3, 3]
    with pytest.raises(InvalidParameterError, match="k must be"):
        store.search(unit_rows(1), k=0)


@pytest.mark.parametrize(
    ("vectors", "message"),
    [
        (np.full((1, DIM), np.nan, dtype=np.float32), "NaN or infinite"),
        (np.zeros((1, DIM), dtype=np.float32), "zero vector"),
        (np.ones((1, DIM + 1), dtype=np.float32), f"{DIM}-d"),
    ],
)
def test_bad_vectors_are_refused(open_store, vectors, message):
    store = open_store(dim=DIM)
    with pytest.raises(InvalidParameterError, match=message):
        store.upsert(["a"], vectors, ["h"])
    store.persist()
    assert open_store().count() == 0


# -- region vectors (suggested fragments) -------------------------------------------------------------


def test_an_image_ranks_by_its_best_vector_and_appears_once(open_store):
    store = open_store()
    query = unit_rows(1, seed=7)[0]
    whole = np.stack([with_cosine(query, c, seed=10 + i) for i, c in enumerate([0.1, 0.6, 0.3])])
    regions = [np.stack([with_cosine(query, 0.9, seed=20), with_cosine(query, 0.8, seed=21)]), None, None]
    store.upsert(["has-regions", "b", "c"], whole, ["h0", "h1", "h2"], regions=regions)
    store.persist()
    reader = open_store()
    (hits,) = reader.search(query[None, :], k=3)
    assert hit_ids(hits) == ["has-regions", "b", "c"]
    assert [hit.score for hit in hits] == pytest.approx([0.9, 0.6, 0.3], abs=1e-5)
    assert reader.count() == 3
    (image,) = reader.get(["has-regions"])  # the whole image's vector, not a region's
    np.testing.assert_allclose(image.vector, whole[0] / np.linalg.norm(whole[0]), atol=1e-6)

    store.upsert(["has-regions"], whole[:1], ["h0"])  # re-upserted without regions: they go
    store.persist()
    (hits,) = open_store().search(query[None, :], k=3)
    assert [(h.id, round(h.score, 4)) for h in hits] == [("b", 0.6), ("c", 0.3), ("has-regions", 0.1)]


def test_search_returns_k_distinct_images_when_regions_crowd_the_top(open_store):
    store = open_store()
    query = unit_rows(1, seed=8)[0]
    crowded = [f"crowded{i}" for i in range(3)]
    whole = np.stack([with_cosine(query, 0.5, seed=30 + i) for i in range(3)])
    regions = [
        np.stack([with_cosine(query, 0.95 - 0.01 * r - 0.001 * i, seed=40 + 10 * i + r) for r in range(MAX_REGIONS)])
        for i in range(3)
    ]
    others = [f"other{i}" for i in range(6)]
    others_whole = np.stack([with_cosine(query, 0.4 - 0.05 * i, seed=60 + i) for i in range(6)])
    store.upsert(
        crowded + others, np.concatenate([whole, others_whole]), crowded + others, regions=regions + [None] * 6
    )
    store.persist()
    reader = open_store()
    for k in (2, 3, 5, 9):
        (hits,) = reader.search(query[None, :], k=k)
        assert hit_ids(hits) == (crowded + others)[:k]
    (filtered,) = reader.search(query[None, :], k=2, tags={"missing": "tag"})
    assert filtered == []


def test_deleting_an_image_removes_its_regions(open_store):
    store = open_store()
    query = unit_rows(1, seed=9)[0]
    store.upsert(
        ["gone", "stays"],
        np.stack([with_cosine(query, 0.0, seed=1), with_cosine(query, 0.2, seed=2)]),
        ["h1", "h2"],
        regions=[np.stack([with_cosine(query, 0.99, seed=3)]), None],
    )
    store.persist()
    store.delete(["gone"])
    store.persist()
    reader = open_store()
    assert reader.count() == 1
    (hits,) = reader.search(query[None, :], k=5)
    assert hit_ids(hits) == ["stays"]


def test_too_many_regions_are_refused(open_store):
    store = open_store()
    with pytest.raises(InvalidParameterError, match=str(MAX_REGIONS)):
        store.upsert(["a"], unit_rows(1), ["h"], regions=[unit_rows(MAX_REGIONS + 1)])
