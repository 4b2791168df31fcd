"""The gallery record: a store belongs to one gallery folder, and writers of another are refused."""

import threading
import time

import pytest

from lookalike.workspace import GalleryMismatchError, GalleryRecord


def test_a_writer_of_the_same_folder_is_welcome_and_one_of_another_folder_refused(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    GalleryRecord(tmp_path / "a").claim(tmp_path)
    GalleryRecord(tmp_path / "a" / ".." / "a", regions=True).claim(tmp_path)
    with pytest.raises(GalleryMismatchError, match="holds the gallery folder .*/a, not .*/b"):
        GalleryRecord(tmp_path / "b").claim(tmp_path)
    assert GalleryRecord.read(tmp_path) == GalleryRecord(tmp_path / "a" / ".." / "a", regions=True)


def test_a_store_follows_its_gallery_when_the_recorded_folder_is_gone(tmp_path):
    (tmp_path / "moved").mkdir()
    GalleryRecord(tmp_path / "old").claim(tmp_path)
    GalleryRecord(tmp_path / "moved").claim(tmp_path)
    assert GalleryRecord.read(tmp_path).root == tmp_path / "moved"


def test_of_two_writers_of_different_folders_starting_together_exactly_one_claims_the_store(tmp_path, monkeypatch):
    read = GalleryRecord.read.__func__

    def slow_read(cls, store_path):
        record = read(cls, store_path)
        time.sleep(0.05)  # widen the gap between reading the record and writing it
        return record

    monkeypatch.setattr(GalleryRecord, "read", classmethod(slow_read))
    store = tmp_path / "store"
    store.mkdir()
    folders = [tmp_path / f"part{i}" for i in range(8)]
    start = threading.Barrier(len(folders))
    outcomes = {}

    def claim(folder):
        folder.mkdir()
        start.wait()
        try:
            GalleryRecord(folder).claim(store)
            outcomes[folder] = "claimed"
        except GalleryMismatchError:
            outcomes[folder] = "refused"

    threads = [threading.Thread(target=claim, args=(folder,)) for folder in folders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = [folder for folder, outcome in outcomes.items() if outcome == "claimed"]
    assert len(claimed) == 1, outcomes
    assert GalleryRecord.read(store).root == claimed[0]
