"""The DynamoDB event log's own behaviour over moto's events table, shaped as the Pulumi program
creates it: items bucketed by day, a time range read day by day, transactions within DynamoDB's
limits, retries. What it shares with the SQLite log (idempotent appends, time ranges, order) is
tested on both in tests/test_events.py."""

from datetime import timedelta

import pytest

from lookalike.aws.dynamodb_log import (
    MAX_TRANSACTION_ITEMS,
    SHARDS,
    DynamoDBEventLog,
    EventWriteError,
)
from lookalike.interactions.events import event_key
from tests.support.event_logs import T0, batch, click
from tests.support.lambda_harness import EVENTS_TABLE


@pytest.fixture
def table(cloud):
    return cloud.dynamodb.Table(EVENTS_TABLE)


def transactions(table, monkeypatch) -> list[list[dict]]:
    """The items of each TransactWriteItems call from now on (the calls still go through)."""
    client = table.meta.client
    write = client.transact_write_items
    calls = []

    def recording(**request):
        calls.append([entry["Put"]["Item"] for entry in request["TransactItems"]])
        return write(**request)

    monkeypatch.setattr(client, "transact_write_items", recording)
    return calls


def test_dynamodb_items_are_bucketed_by_day_and_expire(table):
    DynamoDBEventLog(table, retention_days=30).append(batch(1), received_at=T0)
    items = table.scan()["Items"]
    assert {item["pk"] for item in items} <= {f"2026-03-10#{shard}" for shard in range(SHARDS)}
    assert {item["sk"] for item in items} == {event_key(event) for event in batch(1)}
    assert {int(item["expires_at"]) for item in items} == {int((T0 + timedelta(days=30)).timestamp())}


def test_dynamodb_retries_a_transaction_cancelled_by_a_conflict(table, monkeypatch):
    log = DynamoDBEventLog(table)
    client = table.meta.client
    real = client.transact_write_items
    calls = []

    def conflict_once(**request):
        calls.append(len(request["TransactItems"]))
        if len(calls) == 1:
            reasons = [{"Code": "TransactionConflict"}] + [{"Code": "None"}] * (len(request["TransactItems"]) - 1)
            raise client.exceptions.TransactionCanceledException(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                    "CancellationReasons": reasons,
                },
                "TransactWriteItems",
            )
        return real(**request)

    monkeypatch.setattr(client, "transact_write_items", conflict_once)
    assert log.append(batch(1), received_at=T0).stored == 3
    assert calls == [3, 3]


def test_dynamodb_gives_up_after_repeated_throttling(table, monkeypatch):
    client = table.meta.client

    def throttled(**request):
        reasons = [{"Code": "ThrottlingError"}] * len(request["TransactItems"])
        raise client.exceptions.TransactionCanceledException(
            {"Error": {"Code": "TransactionCanceledException", "Message": "slow down"}, "CancellationReasons": reasons},
            "TransactWriteItems",
        )

    monkeypatch.setattr(client, "transact_write_items", throttled)
    monkeypatch.setattr("lookalike.aws.dynamodb_log.time.sleep", lambda seconds: None)
    with pytest.raises(EventWriteError, match="ThrottlingError"):
        DynamoDBEventLog(table).append(batch(1), received_at=T0)


def test_a_request_of_many_events_is_written_in_transactions_of_at_most_100(table, monkeypatch):
    calls = transactions(table, monkeypatch)
    events = [click(n, "a", f"{n}.jpg", 1) for n in range(2 * MAX_TRANSACTION_ITEMS + 50)]
    assert DynamoDBEventLog(table).append(events, received_at=T0).stored == len(events)
    assert [len(items) for items in calls] == [MAX_TRANSACTION_ITEMS, MAX_TRANSACTION_ITEMS, 50]
    assert [item["order"] for items in calls for item in items] == list(range(len(events))), (
        "the request's order is lost"
    )


def test_large_events_are_split_by_bytes_before_the_item_limit(table, monkeypatch):
    calls = transactions(table, monkeypatch)
    events = [click(n, "a", f"{n}.jpg", 1) for n in range(10)]
    item_bytes = len(events[0].model_dump_json()) + 200  # as the log estimates an item
    monkeypatch.setattr("lookalike.aws.dynamodb_log.MAX_TRANSACTION_BYTES", 3 * item_bytes + 10)
    assert DynamoDBEventLog(table).append(events, received_at=T0).stored == 10
    assert [len(items) for items in calls] == [3, 3, 3, 1]


def test_a_time_range_is_queried_day_by_day_never_scanned(table, monkeypatch):
    log = DynamoDBEventLog(table)
    days = [T0 + timedelta(days=n) for n in range(3)]
    for number, moment in enumerate(days):
        log.append([click(number, "a", "x.jpg", 1)], received_at=moment)
    query = table.query
    partitions = []

    def recording(**request):
        partitions.append(request["KeyConditionExpression"].get_expression()["values"][1])
        return query(**request)

    monkeypatch.setattr(table, "query", recording)
    monkeypatch.setattr(table, "scan", lambda **request: pytest.fail("a time range scanned the whole table"))
    window = list(log.events(since=days[1], until=days[2] + timedelta(hours=1)))
    assert [item.received_at for item in window] == days[1:]
    expected = [f"{day.date().isoformat()}#{shard}" for day in days[1:] for shard in range(SHARDS)]
    assert partitions == expected


@pytest.mark.parametrize("since", [None, T0 - timedelta(hours=1)], ids=["scan", "query"])
def test_every_page_of_a_read_is_followed(table, monkeypatch, since):
    log = DynamoDBEventLog(table)
    events = [click(n, "a", f"{n}.jpg", 1) for n in range(7)]
    log.append(events, received_at=T0)
    for operation in ("scan", "query"):
        read = getattr(table, operation)
        monkeypatch.setattr(table, operation, lambda read=read, **request: read(Limit=2, **request))
    assert [item.event for item in log.events(since=since, until=T0 + timedelta(hours=1))] == events
