"""S3 notifications as the index queue carries them: the events S3 writes for moto's bucket, sent
through moto's queue and received as the SQS records Lambda hands the indexer, read into changes."""

import pytest
from pydantic import ValidationError

from lookalike.aws.notifications import ChangeKind, IndexQueueRecord, ObjectChange, created_notification, object_changes
from lookalike.aws.s3_source import ListedObject
from tests.support.lambda_harness import GALLERY_BUCKET, REGION, S3_TEST_EVENT

LAMP = b"bytes of a lamp"


def received(cloud, *bodies: dict | str) -> list[IndexQueueRecord]:
    return [IndexQueueRecord.model_validate(record) for record in cloud.deliver(*bodies)["Records"]]


def changes(cloud, *bodies: dict | str) -> list[ObjectChange]:
    return [change for record in received(cloud, *bodies) for change in object_changes(record)]


def sequencer(notification: dict) -> str:
    return notification["Records"][0]["s3"]["object"]["sequencer"]


@pytest.mark.parametrize(
    ("key", "encoded"),
    [
        ("kitchen/lamp 1.jpg", "kitchen/lamp+1.jpg"),
        ("café/crème brûlée.png", "caf%C3%A9/cr%C3%A8me+br%C3%BBl%C3%A9e.png"),
        ("c++/a+b=c (1).webp", "c%2B%2B/a%2Bb%3Dc+%281%29.webp"),
    ],
)
def test_a_created_object_arrives_under_its_decoded_key(cloud, key, encoded):
    notification = cloud.put(key, LAMP)
    assert notification["Records"][0]["s3"]["object"]["key"] == encoded
    (created,) = changes(cloud, notification)
    assert created == ObjectChange(
        bucket=GALLERY_BUCKET,
        key=key,
        kind=ChangeKind.CREATED,
        sequencer=sequencer(notification),
        event_id=f"{GALLERY_BUCKET}/{key}@{sequencer(notification)}",
    )


def test_a_removed_object_is_a_removal_with_its_sequencer(cloud):
    cloud.put("kitchen/lamp 1.jpg", LAMP)
    notification = cloud.delete("kitchen/lamp 1.jpg")
    (removed,) = changes(cloud, notification)
    assert (removed.key, removed.kind, removed.sequencer) == (
        "kitchen/lamp 1.jpg",
        ChangeKind.REMOVED,
        sequencer(notification),
    )


def test_duplicates_of_one_s3_event_share_its_event_id(cloud):
    notification = cloud.put("lamp.jpg", LAMP)
    first, duplicate = changes(cloud, notification, notification)
    assert first == duplicate


@pytest.mark.parametrize("tags", [{"room": "hall"}, {}], ids=["ObjectTagging:Put", "ObjectTagging:Delete"])
def test_a_tag_change_means_index_again_and_each_message_is_its_own_event(cloud, tags):
    cloud.put("lamp.jpg", LAMP, tags={"room": "kitchen"})
    notification = cloud.retag("lamp.jpg", tags)
    assert "size" not in notification["Records"][0]["s3"]["object"], "S3 sends tagging events without a size"
    records = received(cloud, notification, notification)
    retagged = [change for record in records for change in object_changes(record)]
    assert [(change.key, change.kind, change.sequencer) for change in retagged] == [
        ("lamp.jpg", ChangeKind.CREATED, None)
    ] * 2
    assert [change.event_id for change in retagged] == [
        f"{GALLERY_BUCKET}/lamp.jpg#{record.messageId}" for record in records
    ]


def test_the_s3_test_event_names_no_object(cloud):
    assert changes(cloud, S3_TEST_EVENT) == []


def test_records_of_one_message_keep_their_order_and_other_kinds_of_event_are_skipped(cloud):
    created, restored, removed = (
        cloud.put("b.jpg", LAMP),
        cloud.notification(
            "ObjectRestore:Completed", "a.jpg", size=len(LAMP), etag="0123456789abcdef", sequenced=False
        ),
        cloud.delete("a.jpg"),
    )
    message = {"Records": [*created["Records"], *restored["Records"], *removed["Records"]]}
    assert [(change.key, change.kind) for change in changes(cloud, message)] == [
        ("b.jpg", ChangeKind.CREATED),
        ("a.jpg", ChangeKind.REMOVED),
    ]


def without_bucket(notification: dict) -> dict:
    del notification["Records"][0]["s3"]["bucket"]
    return notification


@pytest.mark.parametrize(
    "body",
    [
        lambda cloud: "this body is not JSON",
        lambda cloud: without_bucket(cloud.put("lamp.jpg", LAMP)),
        lambda cloud: {"Event": "s3:SomethingElse", "Bucket": GALLERY_BUCKET},
    ],
    ids=["not JSON", "no bucket", "not the test event"],
)
def test_a_body_that_is_no_s3_notification_fails_its_record(cloud, body):
    (record,) = cloud.deliver(body(cloud))["Records"]
    with pytest.raises(ValidationError):
        IndexQueueRecord.model_validate(record)


def test_a_backfill_notification_reads_as_a_creation_without_a_sequencer(cloud):
    listed = ListedObject(key="photos/été/a+b 1.jpg", size=len(LAMP), etag="0123456789abcdef")
    notification = created_notification(GALLERY_BUCKET, listed, REGION)
    assert notification["Records"][0]["s3"]["object"]["key"] == "photos/%C3%A9t%C3%A9/a%2Bb+1.jpg"
    (record,) = received(cloud, notification)
    (created,) = object_changes(record)
    assert (created.bucket, created.key, created.kind, created.sequencer) == (
        GALLERY_BUCKET,
        listed.key,
        ChangeKind.CREATED,
        None,
    )
    assert created.event_id == f"{GALLERY_BUCKET}/{listed.key}#{record.messageId}", (
        "two backfills would share one event"
    )
