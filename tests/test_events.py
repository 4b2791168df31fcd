"""Event models and both event logs: idempotent appends, time ranges, concurrent writers.

The DynamoDB log runs under moto (`mock_aws`) on a table shaped as the Pulumi program creates it
(hash `pk` S, range `sk` S); what only it does is tested in tests/aws/test_dynamodb_log.py."""

import json
import multiprocessing
import threading
from datetime import timedelta

import boto3
import pytest
from moto import mock_aws
from pydantic import ValidationError

from lookalike.cli import main
from lookalike.interactions.events import EVENT, Click, event_key, parse_timestamp, timestamp
from lookalike.aws.dynamodb_log import DynamoDBEventLog
from lookalike.interactions.sqlite_log import SqliteEventLog
from tests.support.event_logs import T0, batch, click, dwell, impression, query_id, session


# --- models ---------------------------------------------------------------------------------


def test_events_parse_by_type():
    parsed = EVENT.validate_python(
        {"type": "click", "query_id": query_id(1), "session_id": session("a"), "image_id": "x.jpg", "position": 2}
    )
    assert isinstance(parsed, Click) and parsed.position == 2
    with pytest.raises(ValidationError):
        EVENT.validate_python({"type": "purchase", "query_id": query_id(1), "session_id": session("a")})


@pytest.mark.parametrize(
    "session_id",
    ["alice@example.com", "Alice Smith 1234567890", "short", "x" * 129, "0612345678+31xxxxx"],
)
def test_session_ids_that_could_carry_personal_data_are_refused(session_id):
    with pytest.raises(ValidationError, match="session_id"):
        Click.model_validate({"query_id": query_id(1), "session_id": session_id, "image_id": "x.jpg", "position": 1})


def test_a_random_uuid_is_a_valid_session_id():
    uuid = "3b241101-e2bb-4255-8caf-4136c566a962"
    parsed = Click.model_validate({"query_id": query_id(1), "session_id": uuid, "image_id": "x", "position": 1})
    assert parsed.session_id == uuid


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"results": [{"image_id": "a", "position": 1}, {"image_id": "b", "position": 1}]}, "share a position"),
        ({"results": [{"image_id": "a", "position": 1}, {"image_id": "a", "position": 2}]}, "listed twice"),
        ({"results": [{"image_id": "a", "position": 0}]}, "greater than or equal to 1"),
        ({"query_id": "not-a-query-id"}, "query_id"),
        ({"query_sha256": "abc"}, "query_sha256"),
        ({"unexpected": 1}, "Extra inputs"),
    ],
)
def test_invalid_impressions_are_refused(change, problem):
    valid = impression(1, "a", ["a", "b"]).model_dump(mode="json")
    with pytest.raises(ValidationError, match=problem):
        EVENT.validate_python({**valid, **change})


def test_dwell_must_be_a_plausible_duration():
    with pytest.raises(ValidationError):
        dwell(1, "a", "x", -5)
    with pytest.raises(ValidationError):
        dwell(1, "a", "x", 2 * 24 * 3600 * 1000)


def test_event_keys_come_from_the_client_id_within_its_search_else_from_the_content():
    first = click(1, "a", "x.jpg", 1, event_id="e1")
    assert event_key(first) == event_key(click(1, "a", "y.jpg", 3, event_id="e1"))  # a retry: same id
    assert event_key(first) != event_key(click(1, "b", "x.jpg", 1, event_id="e1"))  # another session
    assert event_key(first) != event_key(click(2, "a", "x.jpg", 1, event_id="e1"))  # another search
    assert event_key(click(1, "a", "x.jpg", 1)) == event_key(click(1, "a", "x.jpg", 1))
    assert event_key(click(1, "a", "x.jpg", 1)) != event_key(click(1, "a", "x.jpg", 2))


def test_timestamps_are_fixed_width_utc_text_that_sorts_in_time_order():
    later = T0 + timedelta(microseconds=1)
    assert parse_timestamp(timestamp(T0)) == T0
    assert timestamp(T0) < timestamp(later) and len(timestamp(T0)) == len(timestamp(later))


# --- both logs ------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "dynamodb"])
def log(request, tmp_path):
    if request.param == "sqlite":
        yield SqliteEventLog(tmp_path / "events.sqlite")
        return
    with mock_aws():
        yield DynamoDBEventLog(events_table())


def events_table():
    resource = boto3.resource("dynamodb", region_name="eu-west-1")
    return resource.create_table(
        TableName="events",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def test_a_retried_batch_is_stored_once(log):
    first = log.append(batch(1), received_at=T0)
    retry = log.append(batch(1), received_at=T0 + timedelta(seconds=5))
    assert (first.stored, first.duplicates) == (3, 0)
    assert (retry.stored, retry.duplicates) == (0, 3)
    stored = list(log.events(since=T0 - timedelta(days=1), until=T0 + timedelta(days=1)))
    assert [item.event for item in stored] == batch(1)
    assert {item.received_at for item in stored} == {T0}  # the first copy's time stays


def test_a_repeat_within_one_batch_is_a_duplicate(log):
    result = log.append([*batch(1), batch(1)[1]], received_at=T0)
    assert (result.stored, result.duplicates) == (3, 1)


def test_a_partly_new_batch_stores_only_the_new_events(log):
    log.append(batch(1)[:2], received_at=T0)
    result = log.append(batch(1), received_at=T0)
    assert (result.stored, result.duplicates) == (1, 2)
    assert len(list(log.events(since=T0, until=T0 + timedelta(seconds=1)))) == 3


def test_events_come_back_by_time_range_oldest_first(log):
    times = [T0 + timedelta(hours=12 * n) for n in range(5)]  # across three UTC days
    for number, moment in enumerate(times):
        log.append(batch(number)[:1], received_at=moment)
    window = list(log.events(since=times[1], until=times[4]))
    assert [item.received_at for item in window] == times[1:4]
    assert [item.event.query_id for item in window] == [query_id(n) for n in (1, 2, 3)]
    assert [item.received_at for item in log.events(until=times[2])] == times[:2]
    assert [item.received_at for item in log.events()] == times


def test_more_events_than_one_write_request_holds(log):
    events = [click(n, "a", f"{n}.jpg", 1) for n in range(130)]
    assert log.append(events, received_at=T0).stored == 130
    assert log.append(events, received_at=T0).duplicates == 130
    assert [item.event for item in log.events()] == events


# --- SQLite ---------------------------------------------------------------------------------


def _append_from_process(path: str, start: int) -> None:
    log = SqliteEventLog(path, timeout=120)
    for offset in range(0, 100, 10):
        log.append([click(start + offset + n, "a", "x.jpg", 1) for n in range(10)])


def test_sqlite_writers_in_several_processes_and_threads_lose_and_double_nothing(tmp_path):
    path = str(tmp_path / "events.sqlite")
    SqliteEventLog(path)  # create the schema once, as the server does on start
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_append_from_process, args=(path, start)) for start in (0, 50, 100)]
    shared = SqliteEventLog(path)
    threads = [
        threading.Thread(target=lambda start=start: shared.append([click(start + n, "b", "y", 1) for n in range(100)]))
        for start in (0, 50)
    ]
    for worker in [*processes, *threads]:
        worker.start()
    for worker in [*processes, *threads]:
        worker.join()
    assert all(process.exitcode == 0 for process in processes)
    keys = [item.key for item in SqliteEventLog(path).events()]
    assert len(keys) == len(set(keys)) == 200 + 150  # queries 0..199 by "a", 0..149 by "b"


def test_sqlite_log_survives_reopening(tmp_path):
    SqliteEventLog(tmp_path / "events.sqlite").append(batch(1), received_at=T0)
    reopened = SqliteEventLog(tmp_path / "events.sqlite")
    assert [item.event for item in reopened.events()] == batch(1)
    assert reopened.append(batch(1)).duplicates == 3


@mock_aws
def test_metrics_command_reads_the_cloud_log(monkeypatch, capsys):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    DynamoDBEventLog(events_table()).append(batch(1))
    assert main(["metrics", "--events-table", "events", "--json"]) == 0
    overall = json.loads(capsys.readouterr().out)["overall"]
    assert (overall["searches"], overall["results_clicked"], overall["mean_dwell_s"]) == (1, 1, 4.0)
