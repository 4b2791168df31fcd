"""Indexing with region vectors: a photo's suggested fragments become extra vectors of that photo,
so a query showing one object finds the room it sits in."""

import shutil
import sqlite3
from pathlib import Path

import interior_photos
import numpy as np
import pytest
from PIL import Image

from lookalike.cli import main
from lookalike.errors import LookalikeError
from lookalike.images import load_image
from lookalike.indexing import Indexer
from lookalike.search import Query, SearchService
from lookalike.sources import FolderSource
from lookalike.stores.base import MAX_REGIONS
from lookalike.stores.faiss import FaissStore
from lookalike.stores.faiss.files import META_FILENAME
from tests.support.photos import encode, photo, write_gallery

ROOMS = sorted((Path(interior_photos.__file__).parent / "images").glob("*.jpg"))


def room(index: int) -> Image.Image:
    image = Image.open(ROOMS[index]).convert("RGB")
    image.thumbnail((800, 800))
    return image


@pytest.fixture(scope="module")
def gallery(tmp_path_factory) -> Path:
    """write_gallery's photos without chelsea, three rooms, and a room with chelsea in a corner
    (about 8% of its area)."""
    root = tmp_path_factory.mktemp("regions") / "gallery"
    write_gallery(root)
    (root / "cats" / "chelsea.JPEG").unlink()
    with_cat = room(3)
    cat = photo("chelsea")
    cat.thumbnail((with_cat.width // 2.3, with_cat.height // 2.3))
    with_cat.paste(cat, (with_cat.width - cat.width - 30, with_cat.height - cat.height - 40))
    (root / "rooms" / "with-cat.jpg").parent.mkdir()
    (root / "rooms" / "with-cat.jpg").write_bytes(encode(with_cat, quality=90))
    for index in (4, 5, 6):
        (root / "rooms" / f"{index}.jpg").write_bytes(encode(room(index), quality=90))
    return root


def region_rows(store_path: Path) -> dict[str, int]:
    with sqlite3.connect(store_path / META_FILENAME) as db:
        return dict(db.execute("SELECT image_id, COUNT(*) FROM regions GROUP BY image_id"))


def test_a_query_of_one_object_finds_the_room_it_is_part_of(gallery, tmp_path, embedder):
    query = Query(encode(photo("chelsea"), quality=90))
    scores = {}
    for regions in (False, True):
        store = FaissStore(tmp_path / f"store-{regions}")
        report = Indexer(FolderSource(gallery), embedder, store, regions=regions).sync()
        assert len(report.indexed) == 10
        hits = SearchService(embedder, store).search_one(query, k=3)
        assert len({hit.id for hit in hits}) == 3
        scores[regions] = {hit.id: hit.score for hit in hits}
        rows = region_rows(store.path)
        if regions:
            assert hits[0].id == "rooms/with-cat.jpg"
            assert set(rows) >= {"rooms/with-cat.jpg"} and max(rows.values()) <= MAX_REGIONS
        else:
            assert rows == {}
    assert scores[True]["rooms/with-cat.jpg"] > scores[False].get("rooms/with-cat.jpg", 0) + 0.15


def test_get_still_returns_the_whole_image_vector(gallery, tmp_path, embedder):
    store = FaissStore(tmp_path / "store")
    Indexer(FolderSource(gallery), embedder, store, regions=True).sync()
    (stored,) = store.get(["rooms/with-cat.jpg"])
    data = (gallery / "rooms" / "with-cat.jpg").read_bytes()
    whole = embedder.embed_images([load_image(data, min_side=embedder.info.input_size)])
    np.testing.assert_allclose(stored.vector, whole[0], atol=1e-6)


def test_lookalike_index_regions(gallery, tmp_path, model_path, monkeypatch, capsys):
    monkeypatch.setenv("LOOKALIKE_MODEL", str(model_path))
    store_path = tmp_path / "cli-store"
    assert main(["index", str(gallery), "--store", str(store_path), "--regions"]) == 0
    assert "indexed 10" in capsys.readouterr().err
    first = region_rows(store_path)
    assert "rooms/with-cat.jpg" in first
    assert main(["index", str(gallery), "--store", str(store_path), "--regions"]) == 0
    assert "unchanged 10" in capsys.readouterr().err
    assert region_rows(store_path) == first  # skipped images keep their regions


def test_the_store_remembers_it_was_indexed_with_regions(gallery, tmp_path, model_path, monkeypatch, capsys):
    monkeypatch.setenv("LOOKALIKE_MODEL", str(model_path))
    folder, store_path = tmp_path / "gallery", tmp_path / "cli-store"
    shutil.copytree(gallery, folder)
    assert main(["index", str(folder), "--store", str(store_path), "--regions"]) == 0
    (folder / "rooms" / "7.jpg").write_bytes(encode(room(7), quality=90))
    assert main(["index", str(folder), "--store", str(store_path)]) == 0
    assert "rooms/7.jpg" in region_rows(store_path), "a later index run without the flag dropped regions"
    before = region_rows(store_path)
    assert main(["reindex", "--store", str(store_path)]) == 0
    assert region_rows(store_path) == before, "reindex without the flag lost the region vectors"
    assert main(["reindex", "--store", str(store_path), "--no-regions"]) == 0
    assert region_rows(store_path) == {}
    assert main(["index", str(folder), "--store", str(store_path)]) == 0
    assert region_rows(store_path) == {}, "--no-regions was not remembered"
    capsys.readouterr()


def test_regions_need_the_activation_output(tmp_path):
    class OldModel:
        has_activation_maps = False

    with pytest.raises(LookalikeError, match="activation output"):
        Indexer(FolderSource(tmp_path), OldModel(), FaissStore(tmp_path / "store"), regions=True)
