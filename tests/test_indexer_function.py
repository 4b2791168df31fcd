"""The indexing function on S3 notifications inside SQS records, over moto's S3, SQS and DynamoDB,
the loopback OpenSearch and the real model: keys as S3 encodes them, duplicates, redelivery,
events out of order, files that are not images, and one bad record among good ones."""

import hashlib
import json
from pathlib import Path

import interior_photos

import pytest
from botocore.exceptions import ReadTimeoutError
from opensearchpy import OpenSearch

from tests.support.lambda_harness import IDEMPOTENCY_TABLE, S3_TEST_EVENT, LambdaContext, deployment, load_function
from lookalike.aws.notifications import IndexQueueRecord, object_changes
from lookalike.stores.opensearch import OpenSearchStore
from tests.support.photos import encode, photo

JPEG = encode(photo("chelsea"), quality=90)
PNG = encode(photo("coffee").resize((320, 213)), "PNG")
WEBP = encode(photo("rocket"), "WEBP", quality=85)


@pytest.fixture
def cloud(monkeypatch, loopback, model_path):  # noqa: F811
    with deployment(monkeypatch, loopback.url, model_path) as cloud:
        yield cloud


@pytest.fixture
def indexer(cloud):
    return load_function("indexer")


def run(function, event: dict) -> list[str]:
    """Invoke the function; the message ids it reports failed (SQS delivers those again)."""
    response = function.lambda_handler(event, LambdaContext(function_name="lookalike-indexer"))
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


def stored(loopback) -> dict[str, str]:  # noqa: F811
    """id -> content hash, as a reader in another process sees the index."""
    return OpenSearchStore.from_endpoint(loopback.url, "lookalike").content_hashes()


def sequencer(notification: dict) -> str:
    return notification["Records"][0]["s3"]["object"]["sequencer"]


def message_id(event: dict, body: str) -> str:
    (record,) = [record for record in event["Records"] if record["body"] == body]
    return record["messageId"]


def test_created_objects_are_indexed_under_their_decoded_keys(cloud, indexer, loopback):  # noqa: F811
    gallery = {"kitchen/lamp 1.jpg": JPEG, "café/crème brûlée.png": PNG, "c++/a+b=c (1).webp": WEBP}
    notifications = {key: cloud.put(key, data) for key, data in gallery.items()}
    encoded = {key: note["Records"][0]["s3"]["object"]["key"] for key, note in notifications.items()}
    assert encoded == {
        "kitchen/lamp 1.jpg": "kitchen/lamp+1.jpg",
        "café/crème brûlée.png": "caf%C3%A9/cr%C3%A8me+br%C3%BBl%C3%A9e.png",
        "c++/a+b=c (1).webp": "c%2B%2B/a%2Bb%3Dc+%281%29.webp",
    }

    assert run(indexer, cloud.deliver(*notifications.values())) == []

    assert stored(loopback) == {key: hashlib.sha256(data).hexdigest() for key, data in gallery.items()}
    for key, note in notifications.items():
        entry = cloud.ledger(key)
        assert (entry["state"], entry["sequencer"], entry["revision"]) == ("indexed", sequencer(note), 1)


def test_the_s3_test_event_is_acknowledged_and_ignored(cloud, indexer, loopback):  # noqa: F811
    assert run(indexer, cloud.deliver(S3_TEST_EVENT)) == []
    assert stored(loopback) == {}


def test_redelivered_and_duplicated_events_apply_once(cloud, indexer, loopback):  # noqa: F811
    note = cloud.put("lamp.jpg", JPEG)
    event = cloud.deliver(note)
    assert run(indexer, event) == []
    applied = cloud.ledger("lamp.jpg")

    assert run(indexer, event) == []  # the same message again: its visibility timeout ran out
    assert run(indexer, cloud.deliver(note, note)) == []  # S3 sent the notification twice more

    assert cloud.ledger("lamp.jpg") == applied, "a duplicate was applied again"
    assert list(stored(loopback)) == ["lamp.jpg"]
    (idempotency_record,) = cloud.dynamodb.Table(IDEMPOTENCY_TABLE).scan()["Items"]
    assert idempotency_record["status"] == "COMPLETED"


def test_the_ledger_alone_skips_a_duplicate_once_idempotency_forgot_it(cloud, indexer):
    note = cloud.put("lamp.jpg", JPEG)
    (record,) = cloud.deliver(note)["Records"]
    (change,) = object_changes(IndexQueueRecord.model_validate(record))
    first = indexer.services.ordered_indexer.apply(change)
    again = indexer.services.ordered_indexer.apply(change)
    assert (first.applied, first.state) == (True, "indexed")
    assert (again.applied, again.state) == (False, "indexed")
    assert cloud.ledger("lamp.jpg")["revision"] == 1


def test_a_tag_change_alone_reaches_the_index(cloud, indexer, loopback):  # noqa: F811
    assert run(indexer, cloud.deliver(cloud.put("lamp.jpg", JPEG, tags={"room": "kitchen"}))) == []
    index = OpenSearchStore.from_endpoint(loopback.url, "lookalike")
    assert dict(index.get(["lamp.jpg"])[0].tags) == {"room": "kitchen"}
    retagged = cloud.retag("lamp.jpg", {"room": "hall", "sale": "yes"})
    assert run(indexer, cloud.deliver(retagged)) == []
    assert dict(index.get(["lamp.jpg"])[0].tags) == {"room": "hall", "sale": "yes"}, "the new tags did not reach the index"
    assert run(indexer, cloud.deliver(cloud.retag("lamp.jpg", {}))) == []
    assert dict(index.get(["lamp.jpg"])[0].tags) == {}, "ObjectTagging:Delete left the tags (or the image) behind"
    assert cloud.ledger("lamp.jpg")["state"] == "indexed"


def test_region_vectors_when_the_stack_turns_them_on(cloud, loopback, monkeypatch):  # noqa: F811
    monkeypatch.setenv("INDEX_REGIONS", "true")
    indexer = load_function("indexer")  # a cold start with the stack's setting
    room = (Path(interior_photos.__file__).parent / "images" / "pexels-7303842.jpg").read_bytes()
    assert run(indexer, cloud.deliver(cloud.put("rooms/living.jpg", room), cloud.put("cat.jpg", JPEG))) == []
    documents = OpenSearch(loopback.url).count(index="lookalike")["count"]
    assert stored(loopback).keys() == {"rooms/living.jpg", "cat.jpg"}
    assert documents > 2, f"{documents} documents for 2 images: no region vectors were indexed"


def test_a_removed_object_leaves_the_index(cloud, indexer, loopback):  # noqa: F811
    assert run(indexer, cloud.deliver(cloud.put("kitchen/lamp 1.jpg", JPEG))) == []
    removed = cloud.delete("kitchen/lamp 1.jpg")
    assert run(indexer, cloud.deliver(removed)) == []
    assert stored(loopback) == {}
    assert cloud.ledger("kitchen/lamp 1.jpg")["state"] == "removed"


def test_a_late_created_never_resurrects_a_deleted_image(cloud, indexer, loopback):  # noqa: F811
    created = cloud.put("lamp.jpg", JPEG)
    removed = cloud.delete("lamp.jpg")
    assert run(indexer, cloud.deliver(removed)) == []  # the delete's event arrives first
    assert run(indexer, cloud.deliver(created)) == []

    assert stored(loopback) == {}
    entry = cloud.ledger("lamp.jpg")
    assert (entry["state"], entry["sequencer"], entry["revision"]) == ("removed", sequencer(removed), 1)


def test_a_late_removed_never_deletes_the_newer_image(cloud, indexer, loopback):  # noqa: F811
    first = cloud.put("lamp.jpg", JPEG)
    removed = cloud.delete("lamp.jpg")
    again = cloud.put("lamp.jpg", PNG)
    for note in (again, first, removed):  # the newest first, the older two late
        assert run(indexer, cloud.deliver(note)) == []
    assert stored(loopback) == {"lamp.jpg": hashlib.sha256(PNG).hexdigest()}
    assert cloud.ledger("lamp.jpg")["sequencer"] == sequencer(again)


def test_files_that_are_not_images_are_recorded_failed_and_not_retried(cloud, indexer, loopback):  # noqa: F811
    text = cloud.put("notes/readme.txt", b"not an image at all, just words")
    truncated = cloud.put("broken.jpg", JPEG[: len(JPEG) // 3])
    assert run(indexer, cloud.deliver(text, truncated)) == []  # retrying would fail the same way

    assert stored(loopback) == {}
    readme, broken = cloud.ledger("notes/readme.txt"), cloud.ledger("broken.jpg")
    assert readme["state"] == "failed" and readme["reason"].startswith("not an image")
    assert broken["state"] == "failed" and "truncated" in broken["reason"]


def test_an_object_too_large_to_read_is_recorded_failed_unread(cloud, indexer, loopback, monkeypatch):  # noqa: F811
    monkeypatch.setattr(indexer.services.gallery, "max_object_bytes", len(JPEG) - 1)
    assert run(indexer, cloud.deliver(cloud.put("huge.jpg", JPEG))) == []
    assert stored(loopback) == {}
    entry = cloud.ledger("huge.jpg")
    assert entry["state"] == "failed"
    assert entry["reason"] == f"cannot read: the object is {len(JPEG)} bytes; gallery images are read up to {len(JPEG) - 1}"


def test_an_image_replaced_by_a_non_image_leaves_the_index(cloud, indexer, loopback):  # noqa: F811
    assert run(indexer, cloud.deliver(cloud.put("lamp.jpg", JPEG))) == []
    assert run(indexer, cloud.deliver(cloud.put("lamp.jpg", b"%PDF-1.7 a document"))) == []
    assert stored(loopback) == {}
    assert cloud.ledger("lamp.jpg")["state"] == "failed"


def test_one_bad_record_fails_alone(cloud, indexer, loopback):  # noqa: F811
    good = cloud.put("lamp.jpg", JPEG)
    foreign = cloud.notification("ObjectCreated:Put", "theirs.jpg", size=10, etag="0123456789abcdef")
    foreign["Records"][0]["s3"]["bucket"]["name"] = "someone-elses-bucket"
    garbage = "this body is not JSON"
    event = cloud.deliver(good, garbage, foreign)

    failures = run(indexer, event)

    assert sorted(failures) == sorted([message_id(event, garbage), message_id(event, json.dumps(foreign))])
    assert list(stored(loopback)) == ["lamp.jpg"]


def test_a_transient_s3_error_fails_the_record_for_a_retry(cloud, indexer, loopback, monkeypatch):  # noqa: F811
    lamp = cloud.put("lamp.jpg", JPEG)
    event = cloud.deliver(lamp, cloud.put("coffee.png", PNG))
    client = indexer.services.gallery.client
    get_object = client.get_object

    def times_out_on_the_lamp(**kwargs):
        if kwargs["Key"] == "lamp.jpg":
            raise ReadTimeoutError(endpoint_url="https://s3.eu-west-1.amazonaws.com")
        return get_object(**kwargs)

    monkeypatch.setattr(client, "get_object", times_out_on_the_lamp)
    assert run(indexer, event) == [message_id(event, json.dumps(lamp))]
    assert cloud.ledger("lamp.jpg") is None, "a timeout is no failure of the object's"
    assert list(stored(loopback)) == ["coffee.png"]

    monkeypatch.setattr(client, "get_object", get_object)
    redelivered = {"Records": [record for record in event["Records"] if record["body"] == json.dumps(lamp)]}
    assert run(indexer, redelivered) == []  # idempotency forgot the failed attempt
    assert sorted(stored(loopback)) == ["coffee.png", "lamp.jpg"]


def test_an_event_that_loses_the_race_reads_s3_again(cloud, indexer, loopback, monkeypatch):  # noqa: F811
    """ObjectCreated is being applied when, between its read of the object and its store write,
    the object is deleted and another container applies that removal: the late upsert lands last
    and would resurrect the image, so the ledger's conditional write refuses it and the function
    reads S3 again."""
    created = cloud.put("lamp.jpg", JPEG)
    other_container = load_function("indexer")
    gallery = indexer.services.gallery
    read = gallery.read
    removed = {}

    def read_then_lose_the_race(key):
        data = read(key)
        if not removed:
            removed["note"] = cloud.delete(key)
            assert run(other_container, cloud.deliver(removed["note"])) == []
        return data

    monkeypatch.setattr(gallery, "read", read_then_lose_the_race)
    assert run(indexer, cloud.deliver(created)) == []

    assert stored(loopback) == {}
    entry = cloud.ledger("lamp.jpg")
    assert (entry["state"], entry["sequencer"], entry["revision"]) == ("removed", sequencer(removed["note"]), 2)

