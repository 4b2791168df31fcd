"""The cloud's event log: one DynamoDB table (hash `pk` S, range `sk` S, TTL `expires_at`).

Items are bucketed by the UTC day they were received, so a time range is a Query per day rather
than a Scan: `pk` = "<YYYY-MM-DD>#<shard>", `sk` = the event key, `order` the event's place in its
request. The shard (a digit of the key)
spreads one day's writes over SHARDS partition keys, each good for 1,000 writes a second.

Idempotency: every item is written with the condition `attribute_not_exists(pk)`, the events of
a request in one TransactWriteItems call (up to 100 conditional puts at once). A duplicate fails
its condition and cancels the transaction; the cancellation reasons name which items, so those
are counted as duplicates and the rest written again. The first copy's `received_at` stays.
The key includes the day: a retry that arrives on the next UTC day is stored again (the readers
dedupe repeated clicks per session anyway: see lookalike.interactions.click_labels).
"""

import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime, timedelta

import boto3
from boto3.dynamodb.conditions import Attr, Key

from lookalike.interactions.events import EVENT, AppendResult, Event, RecordedEvent, parse_timestamp, record, timestamp, utc_now

SHARDS = 4
# Clicks older than this have done their work as labels; DynamoDB's TTL deletes them.
DEFAULT_RETENTION_DAYS = 400
MAX_TRANSACTION_ITEMS = 100
MAX_TRANSACTION_BYTES = 3_500_000  # DynamoDB refuses transactions over 4 MB
MAX_ATTEMPTS = 5


class EventWriteError(RuntimeError):
    """DynamoDB kept cancelling for reasons other than duplicates (throttling, conflicts)."""


class DynamoDBEventLog:
    """`table` is a boto3 DynamoDB Table resource (its client serializes Python values)."""

    def __init__(self, table, retention_days: int = DEFAULT_RETENTION_DAYS) -> None:
        self.table = table
        self.retention = timedelta(days=retention_days)

    @classmethod
    def named(cls, table_name: str) -> "DynamoDBEventLog":
        """The log in the table of that name, with boto3's default session (the CLI's door)."""
        return cls(boto3.resource("dynamodb").Table(table_name))

    def append(self, events: Sequence[Event], received_at: datetime | None = None) -> AppendResult:
        items = [self._item(recorded, order) for order, recorded in enumerate(record(events, received_at))]
        stored = 0
        for chunk in _chunks(items):
            stored += self._write(chunk)
        return AppendResult(stored=stored, duplicates=len(events) - stored)

    def events(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[RecordedEvent]:
        """Without `since`, the whole table (one Scan: everything is wanted, and the retention may
        span hundreds of days); with it, a Query per day and shard, a day in memory at a time."""
        window = Attr("received_at").lt(timestamp(until or utc_now() + timedelta(seconds=1)))
        if since is None:
            yield from _recorded(self._pages("scan", {"FilterExpression": window}))
            return
        window &= Attr("received_at").gte(timestamp(since))
        day = since.date()
        while day <= (until or utc_now()).date():
            partitions = [Key("pk").eq(_partition(day, shard)) for shard in range(SHARDS)]
            yield from _recorded(
                item
                for partition in partitions
                for item in self._pages("query", {"KeyConditionExpression": partition, "FilterExpression": window})
            )
            day += timedelta(days=1)

    def _item(self, recorded: RecordedEvent, order: int) -> dict:
        return {
            "pk": _partition(recorded.received_at.date(), int(recorded.key, 16) % SHARDS),
            "sk": recorded.key,
            "received_at": timestamp(recorded.received_at),
            "order": order,
            "expires_at": int((recorded.received_at + self.retention).timestamp()),
            "body": recorded.event.model_dump_json(),
        }

    def _write(self, items: list[dict]) -> int:
        """Conditional puts in one transaction; returns how many were new."""
        client = self.table.meta.client
        pending, attempts = items, 0
        while pending:
            try:
                client.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": self.table.name,
                                "Item": item,
                                "ConditionExpression": "attribute_not_exists(pk)",
                            }
                        }
                        for item in pending
                    ]
                )
                return len(pending)
            except client.exceptions.TransactionCanceledException as error:
                reasons = [reason.get("Code", "None") for reason in error.response.get("CancellationReasons", [])]
                if len(reasons) != len(pending):
                    raise
                pending = [item for item, code in zip(pending, reasons) if code != "ConditionalCheckFailed"]
                if any(code not in ("None", "ConditionalCheckFailed") for code in reasons):
                    attempts += 1  # throttled, or in conflict with another writer
                    if attempts == MAX_ATTEMPTS:
                        raise EventWriteError(f"{len(pending)} events not written: {sorted(set(reasons))}") from error
                    time.sleep(0.05 * 2**attempts)
        return 0

    def _pages(self, operation: str, request: dict) -> Iterator[dict]:
        while True:
            page = getattr(self.table, operation)(**request)
            yield from page["Items"]
            if "LastEvaluatedKey" not in page:
                return
            request = {**request, "ExclusiveStartKey": page["LastEvaluatedKey"]}


def _recorded(items: Iterable[dict]) -> Iterator[RecordedEvent]:
    """Oldest first; the events of one request, received at one instant, in their order."""
    for item in sorted(items, key=lambda item: (item["received_at"], item["order"], item["sk"])):
        yield RecordedEvent(
            key=item["sk"], received_at=parse_timestamp(item["received_at"]), event=EVENT.validate_json(item["body"])
        )


def _partition(day: date, shard: int) -> str:
    return f"{day.isoformat()}#{shard}"


def _chunks(items: list[dict]) -> Iterator[list[dict]]:
    """Transactions within DynamoDB's limits: MAX_TRANSACTION_ITEMS items, MAX_TRANSACTION_BYTES."""
    chunk: list[dict] = []
    size = 0
    for item in items:
        item_size = len(item["body"]) + 200
        if chunk and (len(chunk) == MAX_TRANSACTION_ITEMS or size + item_size > MAX_TRANSACTION_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += item_size
    if chunk:
        yield chunk
