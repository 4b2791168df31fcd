"""The embedded store's files: which names in its folder are its own, and which of them a commit
leaves behind as orphans."""

import numpy as np
import pytest

from lookalike.stores.faiss import FaissStore, is_store_file
from lookalike.stores.faiss.files import remove_orphans

OWN = [
    "meta.sqlite",
    "meta.sqlite-wal",
    "meta.sqlite-shm",
    "meta.sqlite-journal",
    "lock",
    "index-0.faiss",
    "index-17.faiss",
    "index-3.faiss.tmp",
]
FOREIGN = [
    "gallery.json",
    "events.sqlite",
    "meta.sqlite.bak",
    "lock.txt",
    "index-.faiss",
    "index-2.faiss.bak",
    "old-index-2.faiss",
    "index-2.faiss.tmp.tmp",
    "images",
]


@pytest.mark.parametrize("name", OWN)
def test_the_store_owns_its_database_lock_and_index_files(name):
    assert is_store_file(name), f"{name} is a file the store writes, but is_store_file disowns it"


@pytest.mark.parametrize("name", FOREIGN)
def test_other_files_in_the_folder_are_not_the_stores(name):
    assert not is_store_file(name), f"{name} is not the store's, but is_store_file claims it"


def test_every_file_a_store_writes_is_its_own(tmp_path):
    store = FaissStore(tmp_path, method="hnsw")
    rows = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    store.upsert(["a", "b", "c", "d"], rows, ["ha", "hb", "hc", "hd"])
    store.persist()
    store.delete(["a"])
    store.persist()
    names = sorted(entry.name for entry in tmp_path.iterdir())
    assert [name for name in names if not is_store_file(name)] == [], f"the store wrote files it disowns: {names}"
    store.close()


def test_orphan_removal_keeps_the_committed_index_and_other_files(tmp_path):
    names = ["index-1.faiss", "index-2.faiss", "index-3.faiss", "index-4.faiss.tmp", "meta.sqlite", "gallery.json"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    remove_orphans(tmp_path, index_generation=2)
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["gallery.json", "index-2.faiss", "meta.sqlite"]
