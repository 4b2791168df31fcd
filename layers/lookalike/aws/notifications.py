"""S3 event notifications as the index queue carries them, read into the changes they stand for.

Each SQS message body is one JSON document from S3: a notification whose `Records` say which
objects were created, removed or re-tagged, or the single `s3:TestEvent` S3 sends when the
notification is configured. Keys arrive URL-encoded as in an HTML form (`+` for a space, `%2B`
for a plus sign, UTF-8 percent-escapes), and each created or removed object carries a
`sequencer` that orders events of that one key.

The backfill command writes messages of the same shape, without a sequencer: they mean "index
whatever this key holds now", which is what `OrderedIndexer` does with a change that has none.
Tagging events (`ObjectTagging:Put`/`Delete`) carry no sequencer either (S3 issues one for PUTs
and DELETEs only) and mean the same: tags filter searches, and the indexer re-reads them with
the object, so a tag change alone reaches the index.
"""

from datetime import datetime, timezone
from enum import StrEnum
from typing import Literal
from urllib.parse import quote_plus, unquote_plus

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.parser.models import S3Model, S3RecordModel, SqsRecordModel
from pydantic import BaseModel, ConfigDict, Json, model_validator

from lookalike.aws.s3_source import ListedObject

logger = Logger()

BACKFILL_CONFIGURATION_ID = "lookalike-backfill"


class S3TestEvent(BaseModel):
    """What S3 sends once when a notification to the queue is configured; it names no object."""

    Event: Literal["s3:TestEvent"]
    Bucket: str


class GalleryEventRecord(S3RecordModel):
    """powertools' S3 record, also accepting tagging events without an object size: they say
    nothing about the bytes, and powertools requires a size of every event but deletions."""

    @model_validator(mode="before")
    @classmethod
    def validate_s3_object(cls, values):  # replaces the parent's validator of this name
        if str(values.get("eventName", "")).startswith("ObjectTagging:"):
            return values
        return S3RecordModel.validate_s3_object(values)


class GalleryEvents(S3Model):
    Records: list[GalleryEventRecord]


class IndexQueueRecord(SqsRecordModel):
    """One message of the index queue, its body parsed (a body that is neither fails the record)."""

    body: Json[GalleryEvents | S3TestEvent]  # type: ignore[assignment]


class ChangeKind(StrEnum):
    CREATED = "created"
    REMOVED = "removed"


class ObjectChange(BaseModel):
    """One object created or removed, its key decoded; `event_id` names this event (idempotency key)."""

    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    kind: ChangeKind
    sequencer: str | None
    event_id: str


def object_changes(record: IndexQueueRecord) -> list[ObjectChange]:
    """The changes one queue message announces, in the order S3 listed them (the test event: none)."""
    if isinstance(record.body, S3TestEvent):
        logger.info("S3 test event ignored", extra={"bucket": record.body.Bucket})
        return []
    changes = []
    for s3_record in record.body.Records:
        kind = _kind(s3_record.eventName)
        bucket = s3_record.s3.bucket.name
        key = unquote_plus(s3_record.s3.object.key)
        if kind is None:
            logger.warning("event ignored", extra={"event": s3_record.eventName, "bucket": bucket, "key": key})
            continue
        sequencer = s3_record.s3.object.sequencer
        # Duplicates of one S3 event share its sequencer; a sequencer-less message is its own event.
        event_id = f"{bucket}/{key}@{sequencer}" if sequencer else f"{bucket}/{key}#{record.messageId}"
        changes.append(ObjectChange(bucket=bucket, key=key, kind=kind, sequencer=sequencer, event_id=event_id))
    return changes


def _kind(event_name: str) -> ChangeKind | None:
    if event_name.startswith(("ObjectCreated:", "ObjectTagging:")):
        return ChangeKind.CREATED
    if event_name.startswith("ObjectRemoved:"):
        return ChangeKind.REMOVED
    return None


def created_notification(bucket: str, listed: ListedObject, region: str) -> dict:
    """An `ObjectCreated` notification for an object that already exists, as S3 would write it
    but without a sequencer (only S3 can issue one), for the backfill."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": region,
                "eventTime": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": BACKFILL_CONFIGURATION_ID},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {
                    "x-amz-request-id": BACKFILL_CONFIGURATION_ID,
                    "x-amz-id-2": BACKFILL_CONFIGURATION_ID,
                },
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": BACKFILL_CONFIGURATION_ID,
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": BACKFILL_CONFIGURATION_ID},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": {"key": quote_plus(listed.key, safe="/"), "size": listed.size, "eTag": listed.etag},
                },
            }
        ]
    }
