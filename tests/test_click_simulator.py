"""The click simulator, small: Tiny ImageNet training images, the real model, the real HTTP server."""

import dataclasses
import shutil
from pathlib import Path

import pytest

from lookalike.interactions.click_labels import training_pairs
from lab.click_simulator import QUERIES_FOLDER, SimulationSettings, image_class, simulate
from lookalike.interactions.events import Impression
from lookalike.interactions.sqlite_log import EVENTS_FILENAME, SqliteEventLog
from lookalike.stores.faiss import FaissStore


@pytest.fixture(scope="module")
def settings(tmp_path_factory, tiny_imagenet_train_tar) -> SimulationSettings:
    return SimulationSettings(
        work=tmp_path_factory.mktemp("simulator"), tar=tiny_imagenet_train_tar, classes=3, per_class=5, queries_per_class=2, sessions=24, seed=7
    )


@pytest.fixture(scope="module")
def first_run(settings, embedder):
    store = settings.work / "store-1"
    return simulate(settings, embedder, store, progress=False), store


@pytest.fixture(scope="module")
def second_run(settings, embedder, first_run):
    store = settings.work / "store-2"
    return simulate(settings, embedder, store, progress=False), store


def logged(store: Path) -> list:
    return list(SqliteEventLog(store / EVENTS_FILENAME).events())


def comparable(store: Path) -> list[dict]:
    """The log without what the server draws (query ids: uuid4) or stamps (times, and keys made of both)."""
    query_numbers: dict[str, int] = {}
    rows = []
    for item in logged(store):
        number = query_numbers.setdefault(item.event.query_id, len(query_numbers))
        rows.append({**item.event.model_dump(mode="json"), "query_id": number})
    return rows


def test_the_gallery_and_queries_are_training_images_and_queries_are_not_indexed(settings, first_run):
    summary, store = first_run
    gallery = sorted(p.relative_to(settings.gallery).as_posix() for p in settings.gallery.rglob("*.JPEG"))
    queries = [key for key in gallery if key.startswith(QUERIES_FOLDER + "/")]
    assert len(gallery) == 3 * (5 + 2) and len(queries) == 3 * 2
    assert FaissStore(store).count() == 3 * 5
    assert FaissStore(store).get(queries) == [None] * len(queries)
    assert all(image_class(key) == Path(key).parent.name for key in gallery)


def test_same_seed_same_events(first_run, second_run):
    first, second = comparable(first_run[1]), comparable(second_run[1])
    assert len(first) > 24 * 2
    assert first == second
    assert dataclasses.replace(first_run[0], index_seconds=0, play_seconds=0) == dataclasses.replace(
        second_run[0], index_seconds=0, play_seconds=0
    )


def test_every_session_searched_and_reported_its_impression(first_run):
    summary, store = first_run
    impressions = [item.event for item in logged(store) if isinstance(item.event, Impression)]
    assert summary.sessions == len(impressions) == 24
    assert len({event.session_id for event in impressions}) == 24
    assert all(event.query_key.startswith(QUERIES_FOLDER + "/") and len(event.results) == 10 for event in impressions)


def test_relevant_results_get_more_clicks(first_run):
    summary, _ = first_run
    relevant_ctr = summary.relevant_clicks / summary.relevant_shown
    irrelevant_ctr = (summary.clicks - summary.relevant_clicks) / (summary.results_shown - summary.relevant_shown)
    assert relevant_ctr > 2 * irrelevant_ctr


def test_retries_reach_the_log_once(first_run):
    summary, store = first_run
    assert summary.events_stored == len(logged(store))
    assert summary.events_posted == summary.events_stored + summary.events_duplicate


def test_the_same_seed_again_adds_searches_but_no_evidence(settings, embedder, first_run):
    """Its users are the same sessions: new query ids, so new searches, but no new distinct sessions."""
    store = settings.work / "store-again"
    shutil.copytree(first_run[1], store)
    before = training_pairs(logged(store))[0]
    again = simulate(dataclasses.replace(settings, sessions=6), embedder, store, progress=False)
    assert again.events_stored == again.events_posted - again.events_duplicate > 0
    assert training_pairs(logged(store))[0] == before


def test_click_pairs_from_the_simulation_name_gallery_files_and_mostly_same_class(settings, first_run):
    pairs, _ = training_pairs(logged(first_run[1]))
    assert pairs
    for pair in pairs:
        assert (settings.gallery / pair.query).is_file() and (settings.gallery / pair.positive).is_file()
    same_class = sum(image_class(pair.query) == image_class(pair.positive) for pair in pairs)
    assert same_class / len(pairs) >= 0.8
