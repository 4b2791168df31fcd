"""The per-object ledger, and the indexer that consults it so that S3 events apply in order.

S3 delivers notifications at least once and in no guaranteed order. For one key, the event with
the greater `sequencer` happened later (AWS: compare two sequencers of the same key as strings
after right-padding the shorter one with zeros). The ledger keeps, per "bucket/key", the latest
sequencer applied and how it ended (indexed, removed, or failed with a reason), so that a
redelivered event, or one older than what was applied, is skipped: a late ObjectCreated never
resurrects a deleted image, and a file that is not an image is recorded once, not retried.

Every write to the ledger is conditional on the entry being unchanged since it was read (its
revision). Two workers applying events of one key at the same time cannot both commit; the loser's
store write may have landed after the winner's, so it reads the object from S3 again (the truth,
strongly consistent) and applies what it finds before committing. The store write always comes
before the ledger commit: a crash between them leaves the ledger behind, and the event, delivered
again, is applied again (indexing is idempotent).
"""

from datetime import datetime, timezone
from enum import StrEnum

from aws_lambda_powertools import Logger
from boto3.dynamodb.conditions import Attr
from pydantic import BaseModel, ConfigDict

from lookalike.aws.notifications import ChangeKind, ObjectChange
from lookalike.indexing import Indexer

logger = Logger()

# Rounds of "lost the race, read S3 again" before giving the message back to the queue.
MAX_ATTEMPTS = 3
NOT_AN_IMAGE = "not an image: no format the indexer decodes starts this way"


class ObjectState(StrEnum):
    INDEXED = "indexed"
    REMOVED = "removed"
    FAILED = "failed"


class LedgerEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    state: ObjectState
    reason: str | None = None
    sequencer: str | None = None  # of the latest event applied; None while only backfills were
    revision: int = 1


class ChangeOutcome(BaseModel):
    """What applying one change did (the idempotency layer keeps it for the change's duplicates)."""

    key: str
    state: ObjectState
    reason: str | None = None
    applied: bool  # False: a duplicate or an older event, skipped


class LedgerConflictError(RuntimeError):
    """Other events of the key kept committing first; the queue delivers this one again later."""


def is_later(sequencer: str, than: str | None) -> bool:
    """Whether an event with `sequencer` happened after one with `than` (same key; None: nothing applied)."""
    if than is None:
        return True
    width = max(len(sequencer), len(than))
    return sequencer.upper().ljust(width, "0") > than.upper().ljust(width, "0")


def _latest(sequencer: str | None, other: str | None) -> str | None:
    if sequencer is None or other is None:
        return sequencer or other
    return sequencer if is_later(sequencer, other) else other


class Ledger:
    """One DynamoDB item per object: hash key `key` = "bucket/key"."""

    def __init__(self, table) -> None:
        self.table = table

    def get(self, bucket: str, key: str) -> LedgerEntry | None:
        item = self.table.get_item(Key={"key": f"{bucket}/{key}"}, ConsistentRead=True).get("Item")
        if item is None:
            return None
        return LedgerEntry(
            bucket=item["bucket"],
            key=item["object_key"],
            state=item["state"],
            reason=item.get("reason"),
            sequencer=item.get("sequencer"),
            revision=int(item["revision"]),
        )

    def commit(self, entry: LedgerEntry, replacing: LedgerEntry | None) -> bool:
        """Write `entry` unless the stored one is no longer `replacing` (False: someone else wrote)."""
        item = {
            "key": f"{entry.bucket}/{entry.key}",
            "bucket": entry.bucket,
            "object_key": entry.key,
            "state": entry.state.value,
            "revision": entry.revision,
            "updated_at": datetime.now(timezone.utc).isoformat(),
        }
        if entry.reason is not None:
            item["reason"] = entry.reason
        if entry.sequencer is not None:
            item["sequencer"] = entry.sequencer
        condition = Attr("key").not_exists() if replacing is None else Attr("revision").eq(replacing.revision)
        try:
            self.table.put_item(Item=item, ConditionExpression=condition)
        except self.table.meta.client.exceptions.ConditionalCheckFailedException:
            return False
        return True


class OrderedIndexer:
    """Applies object changes of one bucket to the store through the core's Indexer, in S3's order."""

    def __init__(self, indexer: Indexer, ledger: Ledger, bucket: str) -> None:
        self.indexer = indexer
        self.ledger = ledger
        self.bucket = bucket

    def apply(self, change: ObjectChange) -> ChangeOutcome:
        if change.bucket != self.bucket:
            raise ValueError(f"an event of bucket {change.bucket!r} reached the indexer of {self.bucket!r}")
        applied = self.ledger.get(change.bucket, change.key)
        if applied is not None and change.sequencer and not is_later(change.sequencer, applied.sequencer):
            logger.info(
                "event skipped: not later than the one applied",
                extra={"key": change.key, "sequencer": change.sequencer, "applied": applied.sequencer},
            )
            return ChangeOutcome(key=change.key, state=applied.state, reason=applied.reason, applied=False)
        state, reason = self._remove(change.key) if change.kind is ChangeKind.REMOVED else self._index(change.key)
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                # Another event of the key committed after our read: our store write may have
                # landed after its own, so apply what S3 holds now on top of both.
                logger.warning("lost a race for this key: reading the object again", extra={"key": change.key})
                applied = self.ledger.get(change.bucket, change.key)
                state, reason = self._index(change.key)
            entry = LedgerEntry(
                bucket=change.bucket,
                key=change.key,
                state=state,
                reason=reason,
                sequencer=_latest(change.sequencer, applied.sequencer if applied else None),
                revision=applied.revision + 1 if applied else 1,
            )
            if self.ledger.commit(entry, replacing=applied):
                logger.info("event applied", extra={"key": change.key, "kind": change.kind, "state": state})
                return ChangeOutcome(key=change.key, state=state, reason=reason, applied=True)
        raise LedgerConflictError(f"{change.bucket}/{change.key}: still contended after {MAX_ATTEMPTS} attempts")

    def _index(self, key: str) -> tuple[ObjectState, str | None]:
        """Index what the object holds now; an object gone meanwhile is removed instead."""
        report = self.indexer.update([key])
        if key in report.failed:
            return ObjectState.FAILED, report.failed[key]
        if key in report.not_images:
            return ObjectState.FAILED, NOT_AN_IMAGE
        if key in report.indexed or key in report.unchanged:
            return ObjectState.INDEXED, None
        return ObjectState.REMOVED, None

    def _remove(self, key: str) -> tuple[ObjectState, str | None]:
        self.indexer.remove([key])
        return ObjectState.REMOVED, None
