"""Region vectors in the embedded FAISS store: an image is found by its best vector, once, and its
regions live and die with it (replace, delete, compaction, reload, two writers)."""

import sqlite3

import numpy as np
import pytest

from lookalike.errors import InvalidParameterError
from lookalike.stores.base import MAX_REGIONS
from lookalike.stores.faiss import FaissStore
from lookalike.stores.faiss.files import META_FILENAME
from lookalike.stores.faiss.store import COMPACT_FRACTION

DIM = 32
METHODS = ["flat", "hnsw"]


def unit_rows(n: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def near(vector: np.ndarray, seed: int, noise: float = 0.1) -> np.ndarray:
    """A unit vector close to `vector` (cosine about 0.95 at the default noise)."""
    row = vector + noise * unit_rows(1, seed)[0]
    return row / np.linalg.norm(row)


def sqlite_rows(path, table: str) -> int:
    with sqlite3.connect(path / META_FILENAME) as db:
        return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def ids(hits) -> list[str]:
    return [hit.id for hit in hits]


@pytest.fixture
def target() -> np.ndarray:
    """The query: no whole-image vector is near it, only some images' regions."""
    return unit_rows(1, seed=1000)


def gallery(store: FaissStore, target: np.ndarray, n: int = 60) -> list[str]:
    """n images with random whole vectors; "room" holds the target as its second region, "crowd"
    holds MAX_REGIONS near-copies of it, "shelf" one weaker copy."""
    image_ids = [f"img{i:03d}" for i in range(n)] + ["room", "crowd", "shelf"]
    vectors = unit_rows(len(image_ids), seed=1)
    regions: list[np.ndarray | None] = [None] * n
    regions.append(np.stack([unit_rows(1, seed=2)[0], near(target[0], seed=3, noise=0.05)]))
    regions.append(np.stack([near(target[0], seed=10 + r, noise=0.2) for r in range(MAX_REGIONS)]))
    regions.append(near(target[0], seed=20, noise=0.6)[None, :])
    store.upsert(image_ids, vectors, [f"h-{i}" for i in image_ids], regions=regions)
    return image_ids


@pytest.mark.parametrize("method", METHODS)
def test_an_image_is_found_once_by_its_best_vector(tmp_path, method, target):
    store = FaissStore(tmp_path, method=method)
    gallery(store, target)
    (hits,) = store.search(target, k=5)
    assert ids(hits)[:3] == ["room", "crowd", "shelf"]
    assert len(hits) == 5 and len(set(ids(hits))) == 5  # crowd's four regions count once
    room_region = near(target[0], seed=3, noise=0.05)
    assert hits[0].score == pytest.approx(float(room_region @ target[0]), abs=1e-5)
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


@pytest.mark.parametrize("method", METHODS)
def test_k_distinct_images_even_when_regions_crowd_the_top(tmp_path, method):
    store = FaissStore(tmp_path, method=method)
    query = unit_rows(1, seed=5)
    crowd = np.stack([near(query[0], seed=s, noise=0.05) for s in range(MAX_REGIONS)])
    crowd_ids = {f"c{i}" for i in range(10)}
    image_ids = sorted(crowd_ids) + [f"plain{i}" for i in range(30)]
    store.upsert(image_ids, unit_rows(40, seed=6), image_ids, regions=[crowd] * 10 + [None] * 30)
    for k in (3, 10, 12, 40, 100):
        (hits,) = store.search(query, k=k)
        assert len(hits) == min(k, 40) and len(set(ids(hits))) == len(hits)
        assert set(ids(hits)[:10]) <= crowd_ids  # the crowd first, each image once


def test_get_returns_the_whole_image_vector_and_count_counts_images(tmp_path, target):
    store = FaissStore(tmp_path)
    image_ids = gallery(store, target)
    vectors = unit_rows(len(image_ids), seed=1)
    assert store.count() == len(image_ids)
    (room,) = store.get(["room"])
    np.testing.assert_array_equal(room.vector, vectors[image_ids.index("room")])


@pytest.mark.parametrize("method", METHODS)
def test_regions_persist_and_reload(tmp_path, method, target):
    store = FaissStore(tmp_path, method=method)
    gallery(store, target)
    before = store.search(target, k=8)
    store.persist()
    assert sqlite_rows(tmp_path, "regions") == 2 + MAX_REGIONS + 1
    reopened = FaissStore(tmp_path)
    assert reopened.count() == store.count()
    assert [ids(h) for h in reopened.search(target, k=8)] == [ids(h) for h in before]
    assert reopened._state.records["crowd"].region_ids == store._state.records["crowd"].region_ids


@pytest.mark.parametrize("method", METHODS)
def test_upsert_without_regions_and_delete_remove_them(tmp_path, method, target):
    store = FaissStore(tmp_path, method=method)
    gallery(store, target)
    store.persist()
    store.upsert(["room"], unit_rows(1, seed=50), ["new"])  # re-indexed without regions
    store.delete(["crowd"])
    store.persist()
    for view in (store, FaissStore(tmp_path)):
        (hits,) = view.search(target, k=3)
        assert ids(hits)[0] == "shelf"
        assert "crowd" not in ids(view.search(target, k=100)[0])
        assert view._state.records["room"].region_ids == ()
    assert sqlite_rows(tmp_path, "regions") == 1
    if method == "hnsw":
        assert sqlite_rows(tmp_path, "tombstones") == 3 + 1 + MAX_REGIONS  # room's 3 vectors, crowd's 5


def test_compaction_keeps_live_regions_and_drops_dead_ones(tmp_path, target):
    store = FaissStore(tmp_path, method="hnsw")
    image_ids = gallery(store, target)
    store.persist()
    total = store._state.index.ntotal
    assert total == len(image_ids) + 2 + MAX_REGIONS + 1
    store.delete(image_ids[:20] + ["crowd"])  # 25 of 70 vectors: past COMPACT_FRACTION
    assert 25 > COMPACT_FRACTION * total
    store.persist()
    assert sqlite_rows(tmp_path, "tombstones") == 0
    assert store._state.index.ntotal == total - 25
    for view in (store, FaissStore(tmp_path)):
        assert ids(view.search(target, k=2)[0]) == ["room", "shelf"]


@pytest.mark.parametrize("method", METHODS)
def test_tag_filter_counts_images_not_vectors(tmp_path, method, target):
    store = FaissStore(tmp_path, method=method)
    image_ids = [f"i{i}" for i in range(12)]
    crowd = np.stack([near(target[0], seed=s) for s in range(MAX_REGIONS)])
    tags = [{"room": "kitchen" if i < 5 else "hall"} for i in range(12)]
    store.upsert(image_ids, unit_rows(12, seed=7), image_ids, tags, regions=[crowd] * 12)
    (hits,) = store.search(target, k=4, tags={"room": "kitchen"})
    assert len(hits) == 4 and set(ids(hits)) <= {f"i{i}" for i in range(5)}
    (hits,) = store.search(target, k=50, tags={"room": "kitchen"})
    assert sorted(ids(hits)) == sorted(f"i{i}" for i in range(5))


def test_two_writers_replay_each_others_regions(tmp_path, target):
    first, second = FaissStore(tmp_path), FaissStore(tmp_path)
    first.upsert(["a"], unit_rows(1, seed=1), ["ha"], regions=[near(target[0], seed=2)[None, :]])
    second.upsert(["b"], unit_rows(1, seed=3), ["hb"], regions=[np.stack([unit_rows(1, seed=4)[0], target[0]])])
    first.persist()
    second.persist()  # reloads first's commit and replays its own upsert on top
    final = FaissStore(tmp_path)
    assert ids(final.search(target, k=2)[0]) == ["b", "a"]
    assert final.search(target, k=1)[0][0].score == pytest.approx(1.0, abs=1e-5)
    assert len(final._state.by_faiss_id) == 2 + 3  # no FAISS id handed out twice


@pytest.mark.parametrize(
    ("regions", "message"),
    [
        ([unit_rows(MAX_REGIONS + 1, seed=1)], f"at most {MAX_REGIONS} region vectors"),
        ([np.zeros((1, DIM), dtype=np.float32)], "zero vector"),
        ([unit_rows(1, seed=1)[:, :16]], "16-d"),
        ([None, None], "2 region sets"),
    ],
)
def test_bad_regions_are_refused(tmp_path, regions, message):
    store = FaissStore(tmp_path)
    with pytest.raises(InvalidParameterError, match=message):
        store.upsert(["a"], unit_rows(1, seed=0), ["h"], regions=regions)
    assert store.count() == 0
