"""The local drop folder as an image source: what it reads, and what it refuses to."""

import json
import logging
import os

import pytest

from lookalike.errors import NotFoundError
from lookalike.files import FileTooLargeError
from lookalike.indexing import Indexer
from lookalike.sources import FolderSource
from lookalike.stores.faiss import FaissStore
from tests.support.photos import encode, photo


@pytest.fixture
def source(tmp_path):
    root = tmp_path / "gallery"
    root.mkdir()
    (root / "coffee.jpg").write_bytes(encode(photo("coffee")))
    return FolderSource(root)


def test_a_fifo_at_an_images_path_is_no_gallery_image(source):
    os.mkfifo(source.root / "rocket.jpg")
    with pytest.raises(NotFoundError, match="a FIFO, not a regular file"):
        source.read("rocket.jpg")


def test_a_symlink_out_of_the_gallery_stays_refused(source, tmp_path):
    (tmp_path / "secret.jpg").write_bytes(encode(photo("rocket")))
    (source.root / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    with pytest.raises(NotFoundError):
        source.read("link.jpg")


def test_a_gallery_file_over_the_cap_is_an_unreadable_file(tmp_path, source):
    capped = FolderSource(source.root, max_file_bytes=1000)
    with pytest.raises(FileTooLargeError, match="over 1,000 bytes"):
        capped.read("coffee.jpg")


@pytest.mark.parametrize(
    "sidecar",
    [
        {"*": "notadict"},
        {"coffee.jpg": ["kind", "drink"]},
        {"coffee.jpg": {"kind": {"nested": "object"}}},
        {"coffee.jpg": {"kind": None}},
        ["coffee.jpg"],
    ],
)
def test_a_malformed_sidecar_is_reported_once_and_ignored(source, sidecar, caplog):
    (source.root / ".tags.json").write_text(json.dumps(sidecar))
    with caplog.at_level(logging.WARNING, logger="lookalike.sources"):
        assert source.tags("coffee.jpg") == {}
        assert source.tags("coffee.jpg") == {}
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1 and warnings[0].startswith("ignoring the tags in "), warnings


def test_a_sidecar_that_is_not_json_or_not_a_file_is_ignored(source):
    (source.root / ".tags.json").write_bytes(b"\xff\xfe{not json")
    assert source.tags("coffee.jpg") == {}
    (source.root / ".tags.json").unlink()
    os.mkfifo(source.root / ".tags.json")
    assert source.tags("coffee.jpg") == {}, "a FIFO sidecar"


def test_indexing_goes_on_without_the_tags_of_a_malformed_sidecar(source, tmp_path, embedder):
    (source.root / ".tags.json").write_text(json.dumps({"*": "notadict"}))
    report = Indexer(source, embedder, FaissStore(tmp_path / "store")).sync()
    assert (report.indexed, report.failed) == (["coffee.jpg"], {})


def test_indexing_removes_an_image_replaced_by_a_fifo_and_keeps_the_others(source, tmp_path, embedder):
    (source.root / "rocket.jpg").write_bytes(encode(photo("rocket")))
    store = FaissStore(tmp_path / "store")
    indexer = Indexer(source, embedder, store)
    indexer.sync()
    (source.root / "rocket.jpg").unlink()
    os.mkfifo(source.root / "rocket.jpg")
    report = indexer.update(["rocket.jpg", "coffee.jpg"])
    assert (report.removed, report.unchanged) == (["rocket.jpg"], ["coffee.jpg"])
    assert sorted(store.content_hashes()) == ["coffee.jpg"]


def test_indexing_records_a_file_over_the_cap_and_indexes_the_others(source, tmp_path, embedder):
    cap = (source.root / "coffee.jpg").stat().st_size
    (source.root / "huge.jpg").write_bytes(encode(photo("rocket")) + bytes(cap))
    capped = FolderSource(source.root, max_file_bytes=cap)
    report = Indexer(capped, embedder, FaissStore(tmp_path / "store")).sync()
    assert report.indexed == ["coffee.jpg"]
    assert list(report.failed) == ["huge.jpg"] and "over" in report.failed["huge.jpg"], report.failed
