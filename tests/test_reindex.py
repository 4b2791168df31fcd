"""`lookalike reindex`: switching a store to another model re-embeds everything, then swaps stores."""

import json
from pathlib import Path

import onnx
import pytest

from lookalike.cli import main
from lookalike.embedding import Embedder
from lookalike.reindexing import previous_path, reindex, staging_path
from lookalike.sources import FolderSource
from lookalike.stores.faiss import FaissStore
from tests.support.photos import encode, photo, write_gallery

OTHER_VERSION = "test-other-model"


@pytest.fixture(scope="module")
def other_model(tmp_path_factory, model_path):
    """The same network under another version: to the store, a model it has never seen."""
    model = onnx.load(model_path)
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    onnx.helper.set_model_props(model, {**metadata, "version": OTHER_VERSION})
    path = tmp_path_factory.mktemp("models") / "other.onnx"
    onnx.save(model, path)
    return path


@pytest.fixture
def indexed(tmp_path, model_path, capsys):
    """A gallery indexed with the base model, one image blocked, an event log beside the store."""
    gallery, store = tmp_path / "gallery", tmp_path / "store"
    write_gallery(gallery)
    assert main(["index", str(gallery), "--store", str(store), "--model", str(model_path)]) == 0
    assert main(["block", "coffee", "--store", str(store)]) == 0
    (store / "events.sqlite").write_bytes(b"the event log")
    capsys.readouterr()
    return gallery, store


def stored(store) -> tuple[str | None, int, set[str]]:
    with FaissStore(store) as opened:
        return opened.model_version, opened.count(), opened.blocked()


def test_reindex_rebuilds_the_store_with_the_new_model(indexed, other_model, model_path, capsys):
    gallery, store = indexed
    base_version = stored(store)[0]
    assert main(["reindex", "--store", str(store), "--model", str(other_model)]) == 0
    err = capsys.readouterr().err
    assert "indexed 7" in err and OTHER_VERSION in err
    assert stored(store) == (OTHER_VERSION, 7, {"coffee"})
    assert stored(previous_path(store)) == (base_version, 7, {"coffee"}), "the old store is not kept for a rollback"
    assert not staging_path(store).exists()
    assert (store / "events.sqlite").read_bytes() == b"the event log", "the event log did not follow the store"
    assert json.loads((store / "gallery.json").read_text())["root"] == str(gallery.resolve())


def test_the_new_store_answers_queries_of_the_new_model_only(indexed, other_model, model_path, capsys):
    gallery, store = indexed
    assert main(["reindex", str(gallery), "--store", str(store), "--model", str(other_model)]) == 0
    query = gallery.parent / "chelsea-again.png"  # other bytes: a query is never answered with its own file
    query.write_bytes(encode(photo("chelsea"), "PNG"))
    capsys.readouterr()
    assert main(["search", str(query), "--json", "--store", str(store), "--model", str(other_model)]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["id"] == "cats/chelsea.JPEG"
    assert main(["index", str(gallery), "--store", str(store), "--model", str(model_path)]) == 2
    assert "model version" in capsys.readouterr().err, "the store took vectors of the old model"
    assert main(["search", str(query), "--store", str(store), "--model", str(model_path)]) == 2
    assert "model version" in capsys.readouterr().err, "the old model's queries were ranked against the new vectors"


def test_a_staging_store_of_another_model_is_discarded(indexed, other_model, model_path):
    gallery, store = indexed
    write_gallery(staging_path(store) / "not-a-store")
    with FaissStore(staging_path(store), model_version="stale-model") as stale:
        stale.persist()
    assert main(["reindex", "--store", str(store), "--model", str(other_model)]) == 0
    assert stored(store) == (OTHER_VERSION, 7, {"coffee"})
    assert not (store / "not-a-store").exists()


def test_an_interrupted_reindex_resumes_with_what_it_committed(indexed, other_model, capsys):
    gallery, store = indexed
    assert main(["index", str(gallery), "--store", str(staging_path(store)), "--model", str(other_model)]) == 0
    capsys.readouterr()
    assert main(["reindex", "--store", str(store), "--model", str(other_model)]) == 0
    assert "indexed 0, unchanged 7" in capsys.readouterr().err
    assert stored(store) == (OTHER_VERSION, 7, {"coffee"})


def test_reindex_needs_an_existing_store(tmp_path, indexed, other_model, capsys):
    gallery, _ = indexed
    missing = tmp_path / "nothing"
    assert main(["reindex", str(gallery), "--store", str(missing), "--model", str(other_model)]) == 2
    assert "no store" in capsys.readouterr().err
    assert not missing.exists(), "reindex created a store where there was none"


def test_reindex_reports_its_progress_to_the_caller(indexed, other_model):
    gallery, store = indexed
    reported = []
    embedder = Embedder(other_model)
    reindex(store, FolderSource(gallery), embedder, on_progress=lambda done, total: reported.append((done, total)))
    assert (reported[0], reported[-1]) == ((0, 7), (7, 7))


def test_index_upgrade_rebuilds_a_store_of_another_model_instead_of_refusing(indexed, other_model, capsys):
    gallery, store = indexed
    assert main(["index", str(gallery), "--store", str(store), "--model", str(other_model)]) == 2
    assert "model version" in capsys.readouterr().err
    assert main(["index", str(gallery), "--store", str(store), "--model", str(other_model), "--upgrade"]) == 0
    assert stored(store) == (OTHER_VERSION, 7, {"coffee"})
    assert previous_path(store).is_dir(), "the old store is not kept for a rollback"
    assert main(["index", str(gallery), "--store", str(store), "--model", str(other_model), "--upgrade"]) == 0
    assert "indexed 0, unchanged 7" in capsys.readouterr().err, "an up-to-date store was rebuilt"


def test_make_demo_upgrades_an_old_demo_store():
    recipe = (Path(__file__).resolve().parents[1] / "Makefile").read_text().split("\ndemo:")[1].split("\n\n")[0]
    index_lines = [line for line in recipe.splitlines() if "lookalike index" in line]
    assert index_lines and all("--upgrade" in line for line in index_lines), index_lines
