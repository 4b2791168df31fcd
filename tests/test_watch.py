"""The drop-folder watcher (the embedded default's stand-in for S3 events), driven by real file-system events."""

import json
import os
import shutil
import time

import pytest

from lookalike.indexing import Indexer
from lookalike.sources import FolderSource
from lookalike.stores.faiss import FaissStore
from lookalike.watch import QUIET_SECONDS, FolderWatcher
from tests.support.photos import encode, photo


def _eventually(condition, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.fixture
def watched(tmp_path, embedder):
    root = tmp_path / "drop"
    (root / "drinks").mkdir(parents=True)
    for name in ("coffee", "rocket"):
        (root / "drinks" / f"{name}.jpg").write_bytes(encode(photo(name)))
    store = FaissStore(tmp_path / "store")
    indexer = Indexer(FolderSource(root), embedder, store)
    indexer.sync()
    watcher = FolderWatcher(FolderSource(root), indexer)
    watcher.start()
    yield root, store
    watcher.stop()


@pytest.fixture
def passes(watched, monkeypatch):
    """The keys of every indexing pass the watcher starts from now on."""
    calls: list[list[str]] = []
    update = Indexer.update

    def counting(self, keys, *args, **kwargs):
        calls.append(list(keys))
        return update(self, keys, *args, **kwargs)

    monkeypatch.setattr(Indexer, "update", counting)
    return calls


def tags_of(store, key):
    (image,) = store.get([key])
    return dict(image.tags)


def test_a_changed_tags_sidecar_retags_its_folder(watched):
    root, store = watched
    assert tags_of(store, "drinks/coffee.jpg") == {}
    (root / "drinks" / ".tags.json").write_text(json.dumps({"*": {"aisle": "3"}, "coffee.jpg": {"kind": "drink"}}))
    assert _eventually(lambda: tags_of(store, "drinks/coffee.jpg") == {"aisle": "3", "kind": "drink"}), tags_of(store, "drinks/coffee.jpg")
    assert _eventually(lambda: tags_of(store, "drinks/rocket.jpg") == {"aisle": "3"})
    (root / "drinks" / ".tags.json").unlink()
    assert _eventually(lambda: tags_of(store, "drinks/coffee.jpg") == {}), "a removed sidecar left its tags behind"


def test_a_new_file_is_indexed_and_a_deleted_one_removed(watched):
    root, store = watched
    (root / "chelsea.png").write_bytes(encode(photo("chelsea"), "PNG"))
    assert _eventually(lambda: store.get(["chelsea.png"])[0] is not None)
    (root / "drinks" / "rocket.jpg").unlink()
    assert _eventually(lambda: store.get(["drinks/rocket.jpg"])[0] is None)


def test_deleting_a_tagged_folder_removes_its_images_and_the_watcher_carries_on(watched):
    root, store = watched
    (root / "drinks" / ".tags.json").write_text(json.dumps({"*": {"aisle": "3"}}))
    assert _eventually(lambda: tags_of(store, "drinks/rocket.jpg") == {"aisle": "3"})
    shutil.rmtree(root / "drinks")
    assert _eventually(lambda: store.get(["drinks/coffee.jpg", "drinks/rocket.jpg"]) == [None, None])
    (root / "after.png").write_bytes(encode(photo("chelsea"), "PNG"))
    assert _eventually(lambda: store.get(["after.png"])[0] is not None), "the watcher stopped after the folder went"


def test_reading_the_folder_starts_no_indexing_pass(watched, passes):
    root, store = watched
    for _ in range(3):
        for path in root.rglob("*.jpg"):
            with path.open("rb") as file:  # as `cp`, a backup or GET /images read it
                file.read()
        time.sleep(0.3)
    time.sleep(QUIET_SECONDS * 4)
    assert passes == [], f"reads started indexing passes: {passes}"
    (root / "chelsea.png").write_bytes(encode(photo("chelsea"), "PNG"))
    assert _eventually(lambda: store.get(["chelsea.png"])[0] is not None)
    settled = len(passes)
    time.sleep(QUIET_SECONDS * 4)
    assert len(passes) == settled, "the watcher's own read of the new file started another pass"


def test_an_image_replaced_by_a_fifo_leaves_the_store_and_nothing_blocks(watched):
    root, store = watched
    (root / "drinks" / "rocket.jpg").unlink()
    os.mkfifo(root / "drinks" / "rocket.jpg")
    assert _eventually(lambda: store.get(["drinks/rocket.jpg"])[0] is None), "the FIFO's id stayed in the store"
    (root / "after.png").write_bytes(encode(photo("chelsea"), "PNG"))
    assert _eventually(lambda: store.get(["after.png"])[0] is not None), "the watcher blocked on the FIFO"
    assert store.get(["drinks/coffee.jpg"])[0] is not None


def test_a_malformed_sidecar_leaves_its_folder_indexed_without_tags_and_no_loop(watched, passes):
    root, store = watched
    (root / "drinks" / ".tags.json").write_text(json.dumps({"*": "notadict"}))
    (root / "drinks" / "chelsea.png").write_bytes(encode(photo("chelsea"), "PNG"))
    assert _eventually(lambda: store.get(["drinks/chelsea.png"])[0] is not None), "a malformed sidecar blocked its folder"
    assert tags_of(store, "drinks/coffee.jpg") == {}
    settled = len(passes)
    time.sleep(QUIET_SECONDS * 4)
    assert len(passes) == settled, f"the watcher kept retrying: {passes[settled:]}"


def test_a_pass_that_fails_is_retried_and_the_drop_is_not_lost(watched, monkeypatch):
    root, store = watched
    monkeypatch.setattr("lookalike.watch.RETRY_SECONDS", 0.2)
    update = Indexer.update
    failures = []

    def failing_once(self, keys, *args, **kwargs):
        if not failures:
            failures.append(list(keys))
            raise OSError(28, "No space left on device")
        return update(self, keys, *args, **kwargs)

    monkeypatch.setattr(Indexer, "update", failing_once)
    (root / "chelsea.jpg").write_bytes(encode(photo("chelsea")))
    assert _eventually(lambda: "chelsea.jpg" in store.content_hashes())
    assert failures and "chelsea.jpg" in failures[0]
