"""The embedded FAISS store on random unit vectors: the VectorStore contract, tombstones and
compaction, filters, concurrent writers, and crashes mid-commit (a writer SIGKILLed)."""

import errno
import random
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from lookalike import knn
from lookalike.errors import InvalidParameterError
from lookalike.knn import KnnMethod
from lookalike.stores.base import Hit, ModelVersionMismatchError, StoreUnavailableError
from lookalike.stores.faiss import FaissStore
from lookalike.stores.faiss import store as faiss_store
from lookalike.stores.faiss.files import META_FILENAME
from lookalike.stores.faiss.store import COMPACT_FRACTION, PARALLEL_QUERIES, StoreCorruptError

DIM = 32
METHODS = ["flat", "hnsw"]


def unit_rows(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def fill(store: FaissStore, n: int, seed: int = 0, prefix: str = "img", tags=None) -> tuple[list[str], np.ndarray]:
    ids = [f"{prefix}{i:04d}" for i in range(n)]
    vectors = unit_rows(n, seed)
    store.upsert(ids, vectors, [f"hash-{i}" for i in ids], tags)
    return ids, vectors


def hit_ids(hits: list[Hit]) -> list[str]:
    return [hit.id for hit in hits]


def brute_force(ids: list[str], vectors: np.ndarray, query: np.ndarray, k: int) -> list[str]:
    order = np.argsort(-(vectors @ query), kind="stable")[:k]
    return [ids[i] for i in order]


def sqlite_rows(path, table: str) -> int:
    with sqlite3.connect(path / META_FILENAME) as db:
        return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


# -- the VectorStore contract ----------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_upsert_get_count_persist_reopen(tmp_path, method):
    store = FaissStore(tmp_path, method=method)
    ids, vectors = fill(store, 40, tags=[{"n": str(i % 2)} for i in range(40)])
    assert store.count() == 40
    store.persist()
    reopened = FaissStore(tmp_path)
    assert reopened.count() == 40
    assert reopened.dim == DIM
    assert reopened.active_method.name == method
    images = reopened.get([ids[3], "missing", ids[39]])
    assert images[1] is None
    assert images[0].id == ids[3] and images[0].content_hash == f"hash-{ids[3]}" and images[0].tags == {"n": "1"}
    np.testing.assert_array_equal(images[0].vector, vectors[3])
    np.testing.assert_array_equal(images[2].vector, vectors[39])
    assert reopened.content_hashes() == {i: f"hash-{i}" for i in ids}
    assert reopened.ids_with_hash(f"hash-{ids[5]}") == [ids[5]]


def test_writes_are_invisible_to_other_instances_until_persist(tmp_path):
    writer = FaissStore(tmp_path, method="flat")
    fill(writer, 5)
    assert writer.count() == 5
    assert FaissStore(tmp_path).count() == 0
    writer.persist()
    assert FaissStore(tmp_path).count() == 5


@pytest.mark.parametrize("method", METHODS)
def test_scores_are_cosine_similarities(tmp_path, method):
    store = FaissStore(tmp_path, method=method)
    raw = np.random.default_rng(1).standard_normal((30, DIM)).astype(np.float32) * 3  # not unit length
    ids = [f"v{i}" for i in range(30)]
    store.upsert(ids, raw, ids)
    query = np.random.default_rng(2).standard_normal((1, DIM)).astype(np.float32)
    (hits,) = store.search(query, k=30)
    cosine = (raw @ query[0]) / (np.linalg.norm(raw, axis=1) * np.linalg.norm(query[0]))
    assert len(hits) == 30
    for hit in hits:
        assert hit.score == pytest.approx(float(cosine[ids.index(hit.id)]), abs=1e-5)
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


@pytest.mark.parametrize("method", METHODS)
def test_few_queries_search_on_one_openmp_thread_and_restore_it(tmp_path, method, monkeypatch):
    store = FaissStore(tmp_path / "store", method=method)
    _, vectors = fill(store, 300)
    faiss = faiss_store.faiss
    original = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(2)
    settings = []

    def recording(threads):
        settings.append(threads)
        real_setting(threads)

    real_setting = faiss.omp_set_num_threads
    monkeypatch.setattr(faiss, "omp_set_num_threads", recording)
    assert store.search(vectors[:1], k=5)[0][0].id == "img0000"
    assert settings == [1, 2], f"one query: OpenMP thread settings {settings}, expected one thread, then 2 again"
    assert faiss.omp_get_max_threads() == 2
    settings.clear()
    store.search(vectors[:PARALLEL_QUERIES], k=5)
    assert settings == [], f"a batch of {PARALLEL_QUERIES} queries changed the thread count: {settings}"
    real_setting(original)


def test_exact_search_matches_brute_force(tmp_path):
    store = FaissStore(tmp_path, method="flat")
    ids, vectors = fill(store, 500)
    queries = unit_rows(20, seed=9)
    for query, hits in zip(queries, store.search(queries, k=10)):
        assert hit_ids(hits) == brute_force(ids, vectors, query, 10)


def test_hnsw_recall(tmp_path):
    store = FaissStore(tmp_path, method="hnsw")
    ids, vectors = fill(store, 3000)
    picks = np.random.default_rng(3).integers(0, 3000, 50)
    queries = vectors[picks] + 0.3 * unit_rows(50, seed=4)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    found = store.search(queries, k=10)
    overlaps = [len(set(hit_ids(hits)) & set(brute_force(ids, vectors, q, 10))) for q, hits in zip(queries, found)]
    recall = np.mean(overlaps) / 10
    assert recall >= 0.9, f"HNSW recall@10 {recall:.2f} on 3000 vectors"
    assert all(hits[0].id == ids[p] for p, hits in zip(picks, found))


def test_k_beyond_the_gallery_and_empty_stores(tmp_path):
    store = FaissStore(tmp_path)
    assert store.search(unit_rows(2), k=5) == [[], []]
    fill(store, 3)
    assert [len(hits) for hits in store.search(unit_rows(2), k=50)] == [3, 3]
    with pytest.raises(InvalidParameterError, match="k must be"):
        store.search(unit_rows(1), k=0)


@pytest.mark.parametrize("method", METHODS)
def test_upsert_overwrites(tmp_path, method):
    store = FaissStore(tmp_path, method=method)
    ids, vectors = fill(store, 20)
    store.persist()
    replacement = unit_rows(1, seed=99)
    store.upsert([ids[0]], replacement, ["new-hash"], [{"v": "2"}])
    store.persist()
    for view in (store, FaissStore(tmp_path)):
        assert view.count() == 20
        (image,) = view.get([ids[0]])
        np.testing.assert_array_equal(image.vector, replacement[0])
        assert (image.content_hash, image.tags) == ("new-hash", {"v": "2"})
        assert view.ids_with_hash(f"hash-{ids[0]}") == []
        (hits,) = view.search(vectors[:1], k=20)
        assert hit_ids(hits).count(ids[0]) == 1  # the old vector is gone, not a second hit
        new_score = float(replacement[0] @ vectors[0])
        assert {h.id: h.score for h in hits}[ids[0]] == pytest.approx(new_score, abs=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_delete(tmp_path, method):
    store = FaissStore(tmp_path, method=method)
    ids, vectors = fill(store, 10)
    store.persist()
    store.delete([ids[2], "never-there"])
    store.delete([ids[2]])
    store.persist()
    reopened = FaissStore(tmp_path)
    assert reopened.count() == 9
    assert reopened.get([ids[2]]) == [None]
    assert ids[2] not in hit_ids(reopened.search(vectors[2:3], k=10)[0])


def test_duplicate_ids_in_one_batch_keep_the_last(tmp_path):
    store = FaissStore(tmp_path)
    vectors = unit_rows(2)
    store.upsert(["a", "a"], vectors, ["h1", "h2"])
    assert store.count() == 1
    np.testing.assert_array_equal(store.get(["a"])[0].vector, vectors[1])


# -- tombstones and compaction ------------------------------------------------------------------------


def test_tombstones_are_never_returned_and_compaction_preserves_results(tmp_path):
    store = FaissStore(tmp_path, method="hnsw")
    ids, vectors = fill(store, 100)
    store.persist()
    below = int(COMPACT_FRACTION * 100)  # 20 tombstones: not more than the fraction yet
    store.delete(ids[:below])
    store.persist()
    assert sqlite_rows(tmp_path, "tombstones") == below
    assert store._state.index.ntotal == 100
    queries = unit_rows(10, seed=5)
    for hits in store.search(queries, k=100):
        assert len(hits) == 100 - below
        assert not set(hit_ids(hits)) & set(ids[:below])
    before = store.search(queries, k=10)

    store.delete([ids[below]])  # 21 of 100: past the threshold
    store.persist()
    assert sqlite_rows(tmp_path, "tombstones") == 0
    assert store._state.index.ntotal == 100 - below - 1
    after = store.search(queries, k=10)
    expected = [[hit for hit in hits if hit.id != ids[below]] for hits in before]
    assert [hit_ids(hits)[:9] for hits in after] == [hit_ids(hits)[:9] for hits in expected]
    reopened = FaissStore(tmp_path)
    assert reopened._state.index.ntotal == 100 - below - 1
    assert [hit_ids(h) for h in reopened.search(queries, k=10)] == [hit_ids(h) for h in after]


def test_auto_switches_to_hnsw_above_the_limit_and_back(tmp_path, monkeypatch):
    monkeypatch.setattr(knn, "AUTO_EXACT_LIMIT", 50)
    monkeypatch.setattr(knn, "AUTO_EXACT_RETURN", 40)
    store = FaissStore(tmp_path, method="auto")
    ids, vectors = fill(store, 49)
    store.persist()
    assert store.active_method.name == "flat"
    store.upsert(["extra"], unit_rows(1, seed=50), ["x"])
    store.persist()
    assert FaissStore(tmp_path).active_method == KnnMethod(name="hnsw")
    store.delete(ids[:5])
    store.persist()
    assert store.active_method.name == "hnsw"  # 45: hysteresis keeps HNSW
    store.delete(ids[5:11])  # 39: below the return threshold
    store.persist()
    assert FaissStore(tmp_path).active_method.name == "flat"
    assert hit_ids(store.search(vectors[20:21], k=1)[0]) == [ids[20]]


# -- filters and the block list ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "exact_limit"),
    [("flat", knn.AUTO_EXACT_LIMIT), ("hnsw", knn.AUTO_EXACT_LIMIT), ("hnsw", 10)],
    ids=["flat", "hnsw-scans-small-sets", "hnsw-walks-the-graph"],
)
def test_tag_filter_returns_min_k_matching_and_only_matching(tmp_path, monkeypatch, method, exact_limit):
    monkeypatch.setattr(knn, "AUTO_EXACT_LIMIT", exact_limit)
    store = FaissStore(tmp_path, method=method)
    tags = [{"colour": "red" if i % 97 == 0 else "blue", "shape": "round" if i % 2 else "square"} for i in range(2000)]
    ids, vectors = fill(store, 2000, tags=tags)
    red = [i for i, t in zip(ids, tags) if t["colour"] == "red"]  # 21 of 2000
    queries = unit_rows(5, seed=6)
    for k in (5, 21, 100):
        for query, hits in zip(queries, store.search(queries, k=k, tags={"colour": "red"})):
            assert len(hits) == min(k, len(red))
            assert set(hit_ids(hits)) <= set(red)
            red_vectors = vectors[[ids.index(i) for i in red]]
            exact = brute_force(red, red_vectors, query, k)
            if exact_limit > len(red):
                assert hit_ids(hits) == exact
            else:
                assert len(set(hit_ids(hits)) & set(exact)) >= 0.6 * len(exact)
    both = store.search(queries[:1], k=100, tags={"colour": "red", "shape": "round"})[0]
    assert hit_ids(both) and all(tags[ids.index(i)] == {"colour": "red", "shape": "round"} for i in hit_ids(both))
    assert store.search(queries[:1], k=5, tags={"colour": "green"}) == [[]]


def test_block_list_persists(tmp_path):
    store = FaissStore(tmp_path)
    store.block(["a", "b", "c"])
    store.unblock(["b"])
    assert store.blocked() == {"a", "c"}
    assert FaissStore(tmp_path).blocked() == set()
    store.persist()
    assert FaissStore(tmp_path).blocked() == {"a", "c"}


# -- several instances and processes ------------------------------------------------------------------


def test_refresh_sees_another_instances_commit(tmp_path):
    reader = FaissStore(tmp_path)
    writer = FaissStore(tmp_path)
    assert reader.refresh() is False
    fill(writer, 5)
    writer.block(["img0001"])
    writer.persist()
    assert reader.count() == 0
    assert reader.refresh() is True
    assert reader.count() == 5 and reader.blocked() == {"img0001"}
    assert reader.refresh() is False


def test_two_writers_interleaved_lose_nothing(tmp_path):
    first = FaissStore(tmp_path, method="hnsw")
    second = FaissStore(tmp_path)
    a_ids, _ = fill(first, 10, seed=1, prefix="a")
    b_ids, _ = fill(second, 10, seed=2, prefix="b")
    first.persist()
    second.persist()  # sees first's commit: reloads and replays its own upserts
    first.delete(a_ids[:2])
    first.block(["a0005"])
    second.upsert(["b-late"], unit_rows(1, seed=3), ["h"])
    second.persist()
    first.persist()
    assert second.refresh()
    final = FaissStore(tmp_path)
    assert set(final.content_hashes()) == set(a_ids[2:]) | set(b_ids) | {"b-late"}
    assert final.blocked() == {"a0005"}
    assert final.active_method.name == "hnsw"
    assert len(set(final._state.by_faiss_id)) == final.count()  # no int64 id handed out twice
    for store in (first, second, final):
        assert not set(hit_ids(store.search(unit_rows(1), k=50)[0])) & set(a_ids[:2])


WRITER = textwrap.dedent(
    """
    import os, sys, time, numpy as np
    from lookalike.stores.faiss import FaissStore
    path, prefix = sys.argv[1], sys.argv[2]
    store = FaissStore(path)
    print("ready", flush=True)
    while not os.path.exists(os.path.join(path, "go")):
        time.sleep(0.001)
    for r in range(15):
        ids = [f"{prefix}-{r}-{j}" for j in range(5)]
        rows = np.random.default_rng(r).standard_normal((5, 16)).astype(np.float32)
        store.upsert(ids, rows, ids)
        store.persist()
    """
)


def test_writer_processes_serialize_their_commits(tmp_path):
    FaissStore(tmp_path, dim=16, method="hnsw").persist()
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), name], stdout=subprocess.PIPE, text=True)
        for name in ("p", "q")
    ]
    assert [writer.stdout.readline().strip() for writer in writers] == ["ready", "ready"]
    (tmp_path / "go").touch()
    assert [writer.wait(timeout=60) for writer in writers] == [0, 0]
    store = FaissStore(tmp_path)
    assert store.count() == 2 * 15 * 5
    assert store.generation == 1 + 2 * 15


def test_searches_from_threads_while_a_writer_upserts(tmp_path):
    store = FaissStore(tmp_path, method="hnsw")
    fill(store, 200)
    store.persist()
    errors = []

    def search_loop():
        try:
            for _ in range(50):
                (hits,) = store.search(unit_rows(1, seed=7), k=10)
                assert len(hits) == 10
                store.get(hit_ids(hits))
        except Exception as error:  # reported below, from the main thread
            errors.append(error)

    threads = [threading.Thread(target=search_loop) for _ in range(3)]
    for thread in threads:
        thread.start()
    for batch in range(10):
        fill(store, 20, seed=100 + batch, prefix=f"w{batch}-")
        store.delete([f"img{batch:04d}"])
        if batch % 3 == 0:
            store.persist()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.count() == 200 + 200 - 10


# -- bad input ---------------------------------------------------------------------------------------


def test_dimension_mismatch_is_refused(tmp_path):
    store = FaissStore(tmp_path, dim=DIM)
    with pytest.raises(InvalidParameterError, match="32-d vectors, got 16-d"):
        store.upsert(["a"], unit_rows(1, dim=16), ["h"])
    fill(store, 2)
    store.persist()
    with pytest.raises(InvalidParameterError, match="32-d"):
        FaissStore(tmp_path, dim=16)
    with pytest.raises(InvalidParameterError, match="32-d"):
        FaissStore(tmp_path).search(unit_rows(1, dim=16), k=1)


@pytest.mark.parametrize(
    ("vectors", "message"),
    [
        (np.full((1, DIM), np.nan, dtype=np.float32), "NaN or infinite"),
        (np.full((1, DIM), np.inf, dtype=np.float32), "NaN or infinite"),
        (np.zeros((1, DIM), dtype=np.float32), "zero vector"),
        (np.ones(DIM, dtype=np.float32), "2-d array"),
    ],
)
def test_bad_vectors_are_refused(tmp_path, vectors, message):
    store = FaissStore(tmp_path)
    with pytest.raises(InvalidParameterError, match=message):
        store.upsert(["a"], vectors, ["h"])
    assert store.count() == 0


def test_lengths_must_agree(tmp_path):
    with pytest.raises(InvalidParameterError, match="one vector, content hash and tag set per id"):
        FaissStore(tmp_path).upsert(["a", "b"], unit_rows(2), ["h"])


def test_model_version_is_recorded_and_checked(tmp_path):
    store = FaissStore(tmp_path)
    store.check_model_version("effnet-1")
    store.persist()
    reopened = FaissStore(tmp_path)
    assert reopened.model_version == "effnet-1"
    reopened.check_model_version("effnet-1")
    with pytest.raises(ModelVersionMismatchError, match="effnet-1"):
        reopened.check_model_version("effnet-2")
    with pytest.raises(ModelVersionMismatchError):
        FaissStore(tmp_path, model_version="effnet-2")


def test_methods_that_need_training_are_refused(tmp_path):
    with pytest.raises(InvalidParameterError, match="needs training"):
        FaissStore(tmp_path, method="ivf")


# -- crashes mid-commit --------------------------------------------------------------------------------

# Round r upserts five ids (tagged by r) and deletes two ids of round r - 2; the parent replays the
# same rounds to know what each committed generation holds.
ROUNDS = textwrap.dedent(
    """
    import numpy as np

    def round_changes(r):
        ids = [f"r{r}-{j}" for j in range(5)]
        rows = np.random.default_rng(r).standard_normal((5, 16)).astype(np.float32)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        return ids, rows, [f"r{r - 2}-{j}" for j in (0, 2)]

    def apply_round(store, r):
        ids, rows, gone = round_changes(r)
        store.upsert(ids, rows, [f"hash-{i}" for i in ids], [{"round": str(r)}] * 5)
        store.delete(gone)
    """
)
CRASHING_WRITER = ROUNDS + textwrap.dedent(
    """
    import sys, time
    from lookalike.stores.faiss import FaissStore, files
    path, mode, first = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "pause":
        install = files.install_index
        def install_then_wait(index, target):
            install(index, target)
            print("installed", flush=True)
            time.sleep(60)
        files.install_index = install_then_wait
    store = FaissStore(path)
    print("ready", flush=True)
    for r in range(first, first + 10_000):
        apply_round(store, r)
        store.persist()
        print(f"committed {r}", flush=True)
    """
)
rounds: dict = {}
exec(ROUNDS, rounds)


def expected_after(last_round: int) -> dict[str, np.ndarray]:
    state: dict[str, np.ndarray] = {}
    for r in range(last_round + 1):
        ids, rows, gone = rounds["round_changes"](r)
        state.update(zip(ids, rows))
        for image_id in gone:
            state.pop(image_id, None)
    return state


def committed_state(path) -> dict[str, np.ndarray]:
    """What a fresh reader sees, after checking that the index file and the rows agree."""
    store = FaissStore(path)
    ids = sorted(store.content_hashes())
    assert store.count() == len(ids)
    assert store._state.index.ntotal - len(store._state.tombstones) == len(ids)
    with sqlite3.connect(path / META_FILENAME) as db:
        rows = {i: np.frombuffer(v, dtype=np.float32) for i, v in db.execute("SELECT id, vector FROM images")}
    images = store.get(ids)
    for image in images:
        np.testing.assert_array_equal(image.vector, rows[image.id])  # the index holds what the rows say
        assert image.content_hash == f"hash-{image.id}"
    if ids:
        (hits,) = store.search(images[0].vector[None, :], k=1)
        assert hits[0].id == ids[0]
    return {image.id: image.vector for image in images}


def assert_state_is(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> bool:
    return actual.keys() == expected.keys() and all(np.allclose(actual[i], expected[i], atol=1e-6) for i in actual)


def start_writer(path, mode: str, first: int) -> subprocess.Popen:
    writer = subprocess.Popen(
        [sys.executable, "-c", CRASHING_WRITER, str(path), mode, str(first)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout.readline().strip() == "ready"
    return writer


def initial_commit(path, method: str) -> None:
    store = FaissStore(path, method=method)
    rounds["apply_round"](store, 0)
    store.persist()


@pytest.mark.parametrize("method", METHODS)
def test_a_writer_killed_between_index_file_and_commit_leaves_the_previous_generation(tmp_path, method):
    initial_commit(tmp_path, method)
    files_before = sorted(p.name for p in tmp_path.glob("index-*.faiss"))
    writer = start_writer(tmp_path, "pause", 1)
    assert writer.stdout.readline().strip() == "installed"
    assert len(list(tmp_path.glob("index-*.faiss"))) == 2  # the new generation's file is on disk
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert assert_state_is(committed_state(tmp_path), expected_after(0))
    assert sorted(p.name for p in tmp_path.glob("index-*.faiss")) == files_before  # the orphan is gone
    assert FaissStore(tmp_path).active_method.name == method


def test_writers_killed_at_random_moments_leave_a_consistent_committed_generation(tmp_path):
    initial_commit(tmp_path, "hnsw")
    last = 0
    chooser = random.Random(1234)
    for _ in range(6):
        writer = start_writer(tmp_path, "loop", last + 1)
        time.sleep(chooser.uniform(0.0, 0.25))
        writer.send_signal(signal.SIGKILL)
        output = writer.communicate()[0]
        reported = [int(line.split()[1]) for line in output.splitlines() if line.startswith("committed")]
        reported_last = max(reported, default=last)
        state = committed_state(tmp_path)
        # The kill may land after a COMMIT and before its "committed" line.
        matches = [r for r in (reported_last, reported_last + 1) if assert_state_is(state, expected_after(r))]
        assert matches, f"after a kill the store matches no committed round near {reported_last}"
        last = matches[0]
    assert last > 6, "the writers committed almost nothing; the kills did not exercise mid-commit states"


# -- ids no store can hold ---------------------------------------------------------------------------

# How Python spells the file name b"bad\xff.png": the byte that is not UTF-8 as a surrogate escape.
UNDECODABLE_ID = b"bad\xff.png".decode("utf-8", "surrogateescape")


@pytest.mark.parametrize("write", ["upsert", "delete", "block", "unblock"])
def test_an_id_that_is_not_utf8_is_refused_and_the_other_writes_still_commit(tmp_path, write):
    store = FaissStore(tmp_path)
    ids, _ = fill(store, 3)
    with pytest.raises(InvalidParameterError, match="not valid UTF-8"):
        if write == "upsert":
            store.upsert(["good", UNDECODABLE_ID], unit_rows(2, seed=1), ["h1", "h2"])
        else:
            getattr(store, write)([UNDECODABLE_ID])
    store.block(["img0000"])
    store.persist()
    reopened = FaissStore(tmp_path)
    assert sorted(reopened.content_hashes()) == ids
    assert reopened.blocked() == {"img0000"}


def test_a_tag_that_is_not_utf8_is_refused(tmp_path):
    store = FaissStore(tmp_path)
    with pytest.raises(InvalidParameterError, match="a tag"):
        store.upsert(["a"], unit_rows(1), ["h"], [{"colour": "\ud800"}])
    store.persist()
    assert FaissStore(tmp_path).count() == 0


# -- a disk that refuses writes --------------------------------------------------------------------


def test_a_full_database_keeps_the_writes_pending_and_the_committed_store_intact(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(faiss_store, "WRITE_RETRY_DELAYS", (0, 0))
    store = FaissStore(tmp_path)
    ids, _ = fill(store, 3)
    store.persist()
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own 'database or disk is full'
    more, _ = fill(store, 200, seed=1, prefix="more")

    with pytest.raises(StoreUnavailableError, match="database or disk is full"):
        store.persist()
    assert caplog.text.count("trying again") == 2
    assert sorted(FaissStore(tmp_path).content_hashes()) == ids

    store._db.execute("PRAGMA max_page_count = 1073741823")
    store.persist()
    assert sorted(FaissStore(tmp_path).content_hashes()) == ids + more


def test_a_passing_disk_fault_is_retried_until_the_commit_succeeds(tmp_path, monkeypatch):
    monkeypatch.setattr(faiss_store, "WRITE_RETRY_DELAYS", (0, 0, 0))
    install_index = faiss_store.files.install_index
    faults = [OSError(errno.ENOSPC, "No space left on device"), OSError(errno.EIO, "Input/output error")]

    def failing_twice(*args):
        if faults:
            raise faults.pop(0)
        install_index(*args)

    monkeypatch.setattr(faiss_store.files, "install_index", failing_twice)
    store = FaissStore(tmp_path)
    ids, _ = fill(store, 3)
    store.persist()
    assert not faults
    assert sorted(FaissStore(tmp_path).content_hashes()) == ids


def test_a_fault_that_is_not_the_disks_is_not_retried(tmp_path, monkeypatch):
    calls = []

    def broken(*args):
        calls.append(args)
        raise RuntimeError("a bug")

    monkeypatch.setattr(faiss_store.files, "install_index", broken)
    store = FaissStore(tmp_path)
    fill(store, 3)
    with pytest.raises(RuntimeError, match="a bug"):
        store.persist()
    assert len(calls) == 1


# -- damaged and read-only stores --------------------------------------------------------------------

REPAIR = "remove it and rebuild it with `lookalike index DIR --store"


def committed_store(path, method="flat") -> tuple[list[str], np.ndarray]:
    store = FaissStore(path, method=method)
    ids, vectors = fill(store, 50)
    store.persist()
    store.close()
    return ids, vectors


def index_file(path):
    (found,) = path.glob("index-*.faiss")
    return found


@pytest.mark.parametrize("size", [0, 0.5])
def test_a_truncated_index_file_is_reported_as_damaged_with_the_repair(tmp_path, size):
    committed_store(tmp_path)
    data = index_file(tmp_path).read_bytes()
    index_file(tmp_path).write_bytes(data[: int(len(data) * size)])
    with pytest.raises(StoreCorruptError, match=f"the store at {tmp_path} is damaged .*{re.escape(REPAIR)}") as raised:
        FaissStore(tmp_path)
    assert raised.value.status == 503


def test_a_missing_index_file_names_the_repair(tmp_path):
    committed_store(tmp_path)
    index_file(tmp_path).unlink()
    with pytest.raises(StoreCorruptError, match=re.escape(REPAIR)):
        FaissStore(tmp_path)


def test_an_index_file_holding_other_vectors_than_the_database_is_damaged(tmp_path):
    committed_store(tmp_path)
    with sqlite3.connect(tmp_path / META_FILENAME) as db:
        db.execute("DELETE FROM images WHERE id = 'img0000'")
    with pytest.raises(StoreCorruptError, match="holds 50 vectors of 32 dimensions, the database 49 of 32"):
        FaissStore(tmp_path)


def test_scores_from_an_index_overwritten_in_place_are_never_returned(tmp_path):
    ids, vectors = committed_store(tmp_path)
    path = index_file(tmp_path)
    data = bytearray(path.read_bytes())
    vector_bytes = vectors.size * 4
    start = data.find(vectors[0].tobytes())
    data[start : start + vector_bytes] = np.full(vectors.size, 3e37, np.float32).tobytes()
    path.write_bytes(bytes(data))
    store = FaissStore(tmp_path)
    with pytest.raises(StoreCorruptError, match="scored a match -?3.*e\\+37, outside a cosine's"):
        store.search(vectors[:1], 5)


@pytest.mark.parametrize("damage", ["truncated", "header"])
def test_a_damaged_database_is_reported_with_the_repair(tmp_path, damage):
    committed_store(tmp_path)
    meta = tmp_path / META_FILENAME
    data = meta.read_bytes()
    meta.write_bytes(data[:100] if damage == "truncated" else b"\0" * 100 + data[100:])
    with pytest.raises(StoreCorruptError, match=f"{META_FILENAME}: .*{re.escape(REPAIR)}"):
        FaissStore(tmp_path).search(unit_rows(1), 3)


def test_a_store_that_cannot_be_written_is_opened_read_only_and_still_searched(tmp_path, monkeypatch):
    """What a read-only folder does (root ignores permissions, so SQLite's refusal is played here)."""
    ids, vectors = committed_store(tmp_path)
    connect = faiss_store._connect

    def read_only_folder(uri):
        if "immutable=1" not in uri:
            raise sqlite3.OperationalError("unable to open database file")
        return connect(uri)

    monkeypatch.setattr(faiss_store, "_connect", read_only_folder)
    monkeypatch.setattr(faiss_store, "WRITE_RETRY_DELAYS", ())
    store = FaissStore(tmp_path)
    assert store.read_only
    assert hit_ids(store.search(vectors[:1], 1)[0]) == [ids[0]]
    store.block(["img0001"])
    with pytest.raises(StoreUnavailableError, match=f"cannot write the store at {tmp_path}"):
        store.persist()
