"""The Indexer on real photos and the real model, into the embedded store: what sync and update add,
skip, embed again and remove, what they record for files they cannot index, tags, region vectors,
commits and the progress they report. (Region vectors' effect on search: test_indexing_regions.py.)"""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from lookalike.images import load_image
from lookalike.indexing import Indexer
from lookalike.search import Query, SearchService
from lookalike.sources import FolderSource
from lookalike.stores.base import MAX_REGIONS, ModelVersionMismatchError
from lookalike.stores.faiss import FaissStore
from tests.support.photos import encode, photo, write_gallery


@pytest.fixture
def gallery(tmp_path) -> dict[str, Path]:
    """write_gallery's seven photos, by key."""
    return write_gallery(tmp_path / "gallery")


@pytest.fixture
def source(tmp_path, gallery) -> FolderSource:
    return FolderSource(tmp_path / "gallery")


@pytest.fixture
def store(tmp_path):
    with FaissStore(tmp_path / "store") as store:
        yield store


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def whole_image_vector(embedder, path: Path) -> np.ndarray:
    return embedder.embed_images([load_image(path.read_bytes(), min_side=embedder.info.input_size)])[0]


def counting_embeddings(embedder, monkeypatch) -> list[int]:
    """How many images each embed_images call from now on embeds."""
    embed_images = embedder.embed_images
    counts = []

    def counting(images, **options):
        counts.append(len(images))
        return embed_images(images, **options)

    monkeypatch.setattr(embedder, "embed_images", counting)
    return counts


def test_sync_indexes_every_image_under_its_key_with_its_own_vector(gallery, source, store, embedder):
    report = Indexer(source, embedder, store, batch_size=3).sync()
    assert sorted(report.indexed) == sorted(gallery)
    assert report.summary() == "indexed 7, unchanged 0, removed 0, failed 0, not images 0"
    assert store.content_hashes() == {key: sha256(path) for key, path in gallery.items()}
    for key, stored in zip(gallery, store.get(list(gallery))):
        np.testing.assert_allclose(stored.vector, whole_image_vector(embedder, gallery[key]), atol=1e-5, err_msg=key)


def test_a_second_sync_embeds_nothing_when_bytes_and_tags_are_unchanged(gallery, source, store, embedder, monkeypatch):
    indexer = Indexer(source, embedder, store)
    indexer.sync()
    embedded = counting_embeddings(embedder, monkeypatch)
    again = indexer.sync()
    assert (again.indexed, sorted(again.unchanged), again.removed) == ([], sorted(gallery), [])
    assert embedded == []


def test_a_changed_file_is_embedded_again_a_new_one_added_and_a_gone_one_removed(gallery, source, store, embedder):
    indexer = Indexer(source, embedder, store)
    indexer.sync()
    gallery["hubble.jpg"].write_bytes(encode(photo("chelsea"), quality=80))
    gallery["retina.jpg"].unlink()
    added = source.root / "new" / "coffee copy.png"
    added.parent.mkdir()
    added.write_bytes(encode(photo("coffee").resize((320, 213)), "PNG"))

    report = indexer.sync()

    assert sorted(report.indexed) == ["hubble.jpg", "new/coffee copy.png"]
    assert (len(report.unchanged), report.removed) == (5, ["retina.jpg"])
    assert store.content_hashes()["hubble.jpg"] == sha256(gallery["hubble.jpg"])
    assert "retina.jpg" not in store.content_hashes()
    (hubble,) = store.get(["hubble.jpg"])
    np.testing.assert_allclose(hubble.vector, whole_image_vector(embedder, gallery["hubble.jpg"]), atol=1e-5)


def test_update_indexes_the_keys_it_is_given_and_nothing_else(gallery, source, store, embedder):
    indexer = Indexer(source, embedder, store)
    indexer.sync()
    before = store.content_hashes()
    gallery["coffee"].write_bytes(encode(photo("rocket"), "PNG"))
    (source.root / "lamp.jpg").write_bytes(encode(photo("chelsea"), quality=85))

    report = indexer.update(["lamp.jpg"])

    assert (report.indexed, report.unchanged, report.removed) == (["lamp.jpg"], [], [])
    assert store.content_hashes() == {**before, "lamp.jpg": sha256(source.root / "lamp.jpg")}


def test_update_of_a_key_whose_file_is_gone_removes_it(gallery, source, store, embedder):
    indexer = Indexer(source, embedder, store)
    indexer.sync()
    gallery["coffee"].unlink()
    assert indexer.update(["coffee"]).removed == ["coffee"]
    assert "coffee" not in store.content_hashes()
    never_seen = indexer.update(["never-there.jpg"])
    assert (never_seen.indexed, never_seen.removed, never_seen.failed) == ([], [], {})
    assert store.count() == 6


def test_remove_deletes_the_keys_and_a_second_time_changes_nothing(gallery, source, store, embedder):
    indexer = Indexer(source, embedder, store)
    indexer.sync()
    assert indexer.remove(["coffee", "astronaut.jpg"]).removed == ["coffee", "astronaut.jpg"]
    assert store.count() == 5 and not {"coffee", "astronaut.jpg"} & set(store.content_hashes())
    indexer.remove(["coffee", "astronaut.jpg"])
    assert store.count() == 5


class LockedFileSource(FolderSource):
    """A folder with one file the indexer is not allowed to read."""

    def read(self, key: str) -> bytes:
        if key == "locked.jpg":
            raise PermissionError(13, "Permission denied", key)
        return super().read(key)


def test_files_it_cannot_index_are_recorded_with_their_reason_and_the_others_indexed(gallery, source, store, embedder):
    (source.root / "broken.jpg").write_bytes(gallery["astronaut.jpg"].read_bytes()[:2000])
    (source.root / "notes.txt").write_text("not an image at all, just words")
    (source.root / "locked.jpg").write_bytes(gallery["astronaut.jpg"].read_bytes())

    report = Indexer(LockedFileSource(source.root), embedder, store, batch_size=4).sync()

    assert sorted(report.indexed) == sorted(gallery)
    assert report.not_images == ["notes.txt"]
    assert sorted(report.failed) == ["broken.jpg", "locked.jpg"]
    assert report.failed["locked.jpg"] == "cannot read: [Errno 13] Permission denied: 'locked.jpg'"
    assert report.failed["broken.jpg"].startswith("the image could not be decoded: "), report.failed["broken.jpg"]
    assert sorted(store.content_hashes()) == sorted(gallery)
    assert "failed broken.jpg: " in report.summary() and "failed locked.jpg: " in report.summary()


def test_an_image_replaced_by_a_file_it_cannot_index_leaves_the_store(gallery, source, store, embedder):
    indexer = Indexer(source, embedder, store)
    indexer.sync()
    gallery["coffee"].write_bytes(b"%PDF-1.7 a document now")
    gallery["hubble.jpg"].write_bytes(gallery["hubble.jpg"].read_bytes()[:2000])
    report = indexer.sync()
    assert (report.not_images, sorted(report.failed)) == (["coffee"], ["hubble.jpg"])
    assert sorted(report.removed) == ["coffee", "hubble.jpg"]
    assert not {"coffee", "hubble.jpg"} & set(store.content_hashes())


def test_each_image_is_stored_with_its_folders_tags(gallery, source, store, embedder):
    (source.root / ".tags.json").write_text(
        json.dumps({"*": {"kind": "photo"}, "coffee": {"kind": "drink", "hot": "yes"}})
    )
    Indexer(source, embedder, store).sync()
    tags = {image.id: dict(image.tags) for image in store.get(list(gallery))}
    assert tags["coffee"] == {"kind": "drink", "hot": "yes"}
    assert tags["astronaut.jpg"] == {"kind": "photo"}
    assert tags["cats/chelsea.JPEG"] == {}, "a sidecar's `*` reached another folder"


def ids(hits):
    return [hit.id for hit in hits]


def test_a_tag_change_alone_reindexes_the_image(tmp_path, embedder):
    root = tmp_path / "gallery"
    write_gallery(root)
    store = FaissStore(tmp_path / "store")
    indexer = Indexer(FolderSource(root), embedder, store)
    indexer.sync()
    service = SearchService(embedder, store)
    query = Query(encode(photo("coffee"), quality=85))
    assert service.search_one(query, k=5, tags={"kind": "drink"}) == []
    (root / ".tags.json").write_text('{"coffee": {"kind": "drink"}}')
    report = indexer.sync()
    assert (report.indexed, len(report.unchanged)) == (["coffee"], 6), "same bytes, new tags: not re-indexed"
    assert ids(service.search_one(query, k=5, tags={"kind": "drink"})) == ["coffee"]
    assert indexer.sync().indexed == [], "unchanged tags re-indexed every time"


def upserted_regions(store, monkeypatch) -> dict[str, np.ndarray | None]:
    """The region vectors each upsert from now on hands the store, by image id."""
    upsert = store.upsert
    regions_by_id = {}

    def recording(ids, vectors, content_hashes, tags=None, regions=None):
        regions_by_id.update(zip(ids, regions if regions is not None else [None] * len(ids)))
        upsert(ids, vectors, content_hashes, tags, regions=regions)

    monkeypatch.setattr(store, "upsert", recording)
    return regions_by_id


def test_without_regions_only_whole_images_are_stored(gallery, source, store, embedder, monkeypatch):
    regions = upserted_regions(store, monkeypatch)
    Indexer(source, embedder, store).sync()
    assert regions == dict.fromkeys(gallery)


def test_with_regions_each_image_brings_its_fragments_vectors(gallery, source, store, embedder, monkeypatch):
    regions = upserted_regions(store, monkeypatch)
    Indexer(source, embedder, store, regions=True).sync()
    assert sorted(regions) == sorted(gallery)
    with_fragments = {key: vectors for key, vectors in regions.items() if vectors is not None}
    assert with_fragments, "no image got a region vector"
    wholes = dict(zip(gallery, (image.vector for image in store.get(list(gallery)))))
    for key, vectors in with_fragments.items():
        assert vectors.dtype == np.float32 and vectors.shape[1] == embedder.info.dim, key
        assert 1 <= len(vectors) <= MAX_REGIONS, key
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5, err_msg=key)
        assert (vectors @ wholes[key]).max() < 0.999, f"{key}: a fragment's vector is the whole image's"


def test_a_store_of_another_model_is_refused(tmp_path, source, embedder):
    with FaissStore(tmp_path / "other", model_version="another-model") as other:
        other.persist()
        with pytest.raises(ModelVersionMismatchError, match="another-model"):
            Indexer(source, embedder, other)


def test_work_is_committed_in_steps_so_a_crash_loses_one_step_at_most(gallery, source, store, embedder, monkeypatch):
    monkeypatch.setattr("lookalike.indexing.COMMIT_EVERY", 4)
    commits = []
    persist = store.persist
    monkeypatch.setattr(store, "persist", lambda: commits.append(store.count()) or persist())
    Indexer(source, embedder, store, batch_size=2).sync()
    assert commits == [4, 7]


def test_progress_is_reported_before_the_first_batch_and_after_each(gallery, source, store, embedder):
    reported = []
    indexer = Indexer(source, embedder, store, batch_size=3)
    indexer.sync(on_progress=lambda done, total: reported.append((done, total)))
    assert reported == [(0, 7), (3, 7), (6, 7), (7, 7)]
    reported.clear()
    indexer.update(["coffee", "hubble.jpg"], on_progress=lambda done, total: reported.append((done, total)))
    assert reported == [(0, 2), (2, 2)]


def test_a_file_name_that_is_not_utf8_is_recorded_as_failed_and_the_others_indexed(gallery, source, store, embedder):
    """S3 keys are always UTF-8; a local name of other bytes is refused, never renamed (two names could meet)."""
    bad_name = b"bad\xff.jpg"
    with open(bytes(source.root) + b"/" + bad_name, "wb") as bad_file:
        bad_file.write(gallery["astronaut.jpg"].read_bytes())
    bad_key = bad_name.decode("utf-8", "surrogateescape")

    report = Indexer(source, embedder, store, batch_size=4).sync()

    assert sorted(report.indexed) == sorted(gallery)
    assert report.failed[bad_key].startswith("cannot be stored: the name "), report.failed
    assert "not valid UTF-8" in report.failed[bad_key]
    assert sorted(FaissStore(store.path).content_hashes()) == sorted(gallery)
    assert Indexer(source, embedder, store).remove([bad_key]).removed == []
