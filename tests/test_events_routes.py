"""POST /events (and the query_id POST /search hands out) on API Gateway HTTP API (2.0) events,
through the real app over a real store and model, into a real SQLite event log."""

import base64
import json

import pytest

from lookalike.interactions.engagement import engagement
from lookalike.interactions.sqlite_log import SqliteEventLog
from lookalike.http.events_routes import MAX_EVENTS_PER_REQUEST
from lookalike.http.app import create_app
from lookalike.indexing import Indexer
from lookalike.search import SearchService
from lookalike.sources import FolderSource
from lookalike.stores.faiss import FaissStore
from tests.support.event_logs import click, dwell, impression, query_id, session
from tests.support.photos import write_gallery
from tests.support.api_gateway import call
from tests.support.galleries import chelsea_copy

SENDBEACON = "text/plain;charset=UTF-8"  # what navigator.sendBeacon(url, string) sends


@pytest.fixture(scope="module")
def service(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("events-routes")
    source = FolderSource(root / "gallery")
    write_gallery(source.root)
    store = FaissStore(root / "store")
    Indexer(source, embedder, store).sync()
    return SearchService(embedder, store), source


@pytest.fixture
def log(tmp_path):
    return SqliteEventLog(tmp_path / "events.sqlite")


@pytest.fixture
def app(service, log):
    return create_app(*service, events=log)


def post_events(app, payload, content_type: str = "application/json"):
    return call(app, "POST", "/events", json.dumps(payload).encode(), content_type)


def as_json(*events) -> list[dict]:
    return [event.model_dump(mode="json", exclude_none=True) for event in events]


def test_search_hands_out_a_fresh_query_id(app):
    body = {"image": base64.b64encode(chelsea_copy()).decode(), "k": 3}
    first = call(app, "POST", "/search", json.dumps(body).encode(), "application/json").json()
    second = call(app, "POST", "/search", json.dumps(body).encode(), "application/json").json()
    assert len(first["query_id"]) == 32 and int(first["query_id"], 16) >= 0
    assert first["query_id"] != second["query_id"]


def test_a_search_its_impression_click_and_dwell_reach_the_log(app, log):
    body = {"image": base64.b64encode(chelsea_copy()).decode(), "k": 3}
    reply = call(app, "POST", "/search", json.dumps(body).encode(), "application/json").json()
    shown = [hit["id"] for hit in reply["results"]]
    common = {"query_id": reply["query_id"], "session_id": session("web")}
    events = [
        {"type": "impression", **common, "results": [{"image_id": i, "position": p} for p, i in enumerate(shown, 1)]},
        {"type": "click", **common, "image_id": shown[1], "position": 2, "event_id": "c1"},
        {"type": "dwell", **common, "image_id": shown[1], "dwell_ms": 4200, "event_id": "d1"},
    ]
    accepted = post_events(app, events)
    assert accepted.status == 202, accepted.content
    assert accepted.json() == {"accepted": 3, "stored": 3, "duplicates": 0}
    stats = engagement(log.events()).overall
    assert (stats.searches, stats.results_clicked, stats.ctr_by_position[2], stats.mean_dwell_s) == (1, 1, 1.0, 4.2)


@pytest.mark.parametrize("content_type", ["application/json", SENDBEACON, None])
@pytest.mark.parametrize("wrapped", [False, True])
def test_a_batch_is_an_array_or_an_events_object_in_json_or_plain_text(app, log, content_type, wrapped):
    events = as_json(impression(1, "a", ["x", "y"]), click(1, "a", "y", 2))
    reply = post_events(app, {"events": events} if wrapped else events, content_type)
    assert reply.status == 202, reply.content
    assert [item.event.type for item in log.events()] == ["impression", "click"]


def test_a_retried_batch_counts_nothing_twice(app, log):
    events = as_json(impression(1, "a", ["x", "y"], event_id="i1"), click(1, "a", "y", 2, event_id="c1"))
    assert post_events(app, events, SENDBEACON).json()["stored"] == 2
    retry = post_events(app, events, SENDBEACON)
    assert retry.status == 202 and retry.json() == {"accepted": 2, "stored": 0, "duplicates": 2}
    assert len(list(log.events())) == 2


def test_invalid_events_are_refused_by_index_and_the_valid_ones_kept(app, log):
    valid = as_json(click(1, "a", "y", 2), dwell(1, "a", "y", 1500))
    personal = {**valid[0], "session_id": "alice@example.com"}
    reply = post_events(app, [valid[0], personal, valid[1], {"type": "click", "query_id": query_id(1)}])
    assert reply.status == 422
    message = reply.json()["error"]["message"]
    assert "events.1.click.session_id" in message and "events.3.click.image_id" in message
    assert "events.0" not in message and "events.2" not in message
    assert [item.event.type for item in log.events()] == ["click", "dwell"]


@pytest.mark.parametrize(
    "body, content_type, status",
    [
        (b"[{not json", "application/json", 400),
        (b"", SENDBEACON, 400),
        (b'{"clicks": []}', "application/json", 422),
        (b'"impression"', "application/json", 422),
        (b"a=b", "application/x-www-form-urlencoded", 415),
        (b'[{"type": "\xff"}]', SENDBEACON, 400),
        (b'[{"type": "\xff"}]', "application/json; charset=utf-8", 400),
        ('[{"type": "click"}]'.encode("utf-16"), "application/json; charset=utf-16", 400),
    ],
    ids=["not JSON", "empty", "no events key", "a string", "a form", "not UTF-8 as text/plain",
         "not UTF-8 as JSON", "UTF-16 JSON"],
)
def test_unreadable_batches_are_refused(app, log, body, content_type, status):
    reply = call(app, "POST", "/events", body, content_type)
    assert reply.status == status, reply.content
    assert reply.json()["error"]["status"] == status
    assert list(log.events()) == []


def test_too_many_events_in_one_request_is_413_and_nothing_is_stored(app, log):
    events = as_json(*[click(n, "a", "y", 1) for n in range(MAX_EVENTS_PER_REQUEST + 1)])
    assert post_events(app, events).status == 413
    assert list(log.events()) == []
    assert post_events(app, events[:MAX_EVENTS_PER_REQUEST]).status == 202


def test_an_empty_batch_is_accepted(app):
    assert post_events(app, []).json() == {"accepted": 0, "stored": 0, "duplicates": 0}


def test_without_an_event_log_there_is_no_events_route(service):
    assert post_events(create_app(*service), []).status == 404


def test_openapi_documents_the_events_body_and_the_query_id(app):
    document = call(app, "GET", "/openapi.json").json()
    operation = document["paths"]["/events"]["post"]
    assert set(operation["requestBody"]["content"]) == {"application/json", "text/plain"}
    assert set(operation["responses"]) >= {"202", "413", "422"}
    assert "query_id" in document["components"]["schemas"]["SearchResponse"]["properties"]
