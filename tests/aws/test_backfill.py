"""The backfill command over moto's S3 and SQS, and the indexing function on the messages it writes."""

import json

import pytest

from tests.support.lambda_harness import GALLERY_BUCKET, LambdaContext, deployment, load_function
from lookalike.aws.backfill import BATCH_SIZE, SEND_ATTEMPTS, Backfill, BackfillError, main
from lookalike.aws.notifications import ChangeKind, IndexQueueRecord, object_changes
from lookalike.stores.opensearch import OpenSearchStore
from tests.support.photos import encode, photo
from tests.support.api_gateway import Reply, api_event


@pytest.fixture
def cloud(monkeypatch, loopback, model_path):  # noqa: F811
    with deployment(monkeypatch, loopback.url, model_path) as cloud:
        yield cloud


class CountingSqs:
    """The real (moto) client, counting SendMessageBatch calls; `refuse` fails entries by id, per call."""

    def __init__(self, sqs, refuse: list[set[str]] | None = None) -> None:
        self.sqs = sqs
        self.refuse = refuse or []
        self.batches: list[int] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:
        self.batches.append(len(Entries))
        refused = self.refuse.pop(0) if self.refuse else set()
        sent = [entry for entry in Entries if entry["Id"] not in refused]
        response = self.sqs.send_message_batch(QueueUrl=QueueUrl, Entries=sent) if sent else {}
        failed = [
            {"Id": entry["Id"], "SenderFault": False, "Code": "ServiceUnavailable", "Message": "try again"}
            for entry in Entries
            if entry["Id"] in refused
        ]
        return {"Successful": response.get("Successful", []), "Failed": failed}


def drain(cloud) -> list[dict]:
    """Every queued message as the SQS records Lambda would hand the indexer."""
    records = []
    while batch := cloud.receive()["Records"]:
        records += batch
        cloud.sqs.delete_message_batch(
            QueueUrl=cloud.queue_url,
            Entries=[{"Id": str(n), "ReceiptHandle": r["receiptHandle"]} for n, r in enumerate(batch)],
        )
    return records


def test_every_key_under_the_prefix_is_enqueued_in_batches_of_ten(cloud):
    keys = [f"photos/{n:02d} copy+{n}.jpg" for n in range(23)] + ["photos/été/chalet.png"]
    for key in keys + ["elsewhere/skipped.jpg", "photos/folder/"]:
        cloud.s3.put_object(Bucket=GALLERY_BUCKET, Key=key, Body=b"bytes do not matter here")
    counting = CountingSqs(cloud.sqs)

    report = Backfill(cloud.s3, counting, GALLERY_BUCKET, cloud.queue_url).run("photos/")
    assert (report.enqueued, report.last_key, report.done) == (len(keys), "photos/été/chalet.png", True)

    assert counting.batches == [BATCH_SIZE, BATCH_SIZE, len(keys) - 2 * BATCH_SIZE]
    changes = [change for record in drain(cloud) for change in object_changes(IndexQueueRecord.model_validate(record))]
    assert sorted(change.key for change in changes) == sorted(keys)
    assert {(change.kind, change.sequencer, change.bucket) for change in changes} == {
        (ChangeKind.CREATED, None, GALLERY_BUCKET)
    }


def test_a_limited_run_says_where_to_go_on(cloud):
    keys = sorted(f"{n:02d}.jpg" for n in range(25))
    for key in keys:
        cloud.s3.put_object(Bucket=GALLERY_BUCKET, Key=key, Body=b"x")
    backfill = Backfill(cloud.s3, cloud.sqs, GALLERY_BUCKET, cloud.queue_url)
    first = backfill.run(limit=20)
    rest = backfill.run(start_after=first.last_key, limit=20)
    assert (first.enqueued, first.last_key, first.done) == (20, keys[19], False)
    assert (rest.enqueued, rest.last_key, rest.done) == (5, keys[-1], True)
    assert backfill.run(limit=25).done, "a limit that takes the last key leaves nothing to go on with"
    enqueued = [json.loads(r["body"])["Records"][0]["s3"]["object"]["key"] for r in drain(cloud)]
    assert sorted(enqueued) == sorted(keys * 2)


def test_progress_is_the_number_enqueued_after_each_batch(cloud):
    for n in range(23):
        cloud.s3.put_object(Bucket=GALLERY_BUCKET, Key=f"{n:02d}.jpg", Body=b"x")
    reported = []
    Backfill(cloud.s3, cloud.sqs, GALLERY_BUCKET, cloud.queue_url).run(on_progress=reported.append)
    assert reported == [BATCH_SIZE, 2 * BATCH_SIZE, 23]


def test_the_admin_function_backfills_in_slices_behind_iam(cloud, monkeypatch):
    monkeypatch.setattr("lookalike.http.admin_routes.KEYS_PER_REQUEST", 10)
    keys = sorted(f"photos/{n:02d}.jpg" for n in range(23))
    for key in keys + ["other/skipped.jpg"]:
        cloud.s3.put_object(Bucket=GALLERY_BUCKET, Key=key, Body=b"x")
    admin = load_function("admin")
    slices, start_after = [], None
    while True:
        body = json.dumps({"prefix": "photos/", "start_after": start_after}).encode()
        event = api_event("POST", "/admin/backfill", body, "application/json")
        reply = Reply(admin.lambda_handler(event, LambdaContext(function_name="lookalike-admin")))
        assert reply.status == 200, reply.content
        slices.append(reply.json()["enqueued"])
        start_after = reply.json()["next"]
        if start_after is None:
            break
    assert slices == [10, 10, 3]
    enqueued = [json.loads(r["body"])["Records"][0]["s3"]["object"]["key"] for r in drain(cloud)]
    assert sorted(enqueued) == keys


def test_the_command_line(cloud, capsys):
    for key in ("a.jpg", "b c.jpg"):
        cloud.s3.put_object(Bucket=GALLERY_BUCKET, Key=key, Body=b"x")
    assert main(["--bucket", GALLERY_BUCKET, "--queue-url", cloud.queue_url, "--quiet"]) == 0
    assert capsys.readouterr().out == f"enqueued 2 keys of s3://{GALLERY_BUCKET}/\n"
    assert cloud.queued() == 2


def test_the_command_line_draws_its_progress_on_stderr_unless_quiet(cloud, capsys):
    for key in ("a.jpg", "b c.jpg"):
        cloud.s3.put_object(Bucket=GALLERY_BUCKET, Key=key, Body=b"x")
    assert main(["--bucket", GALLERY_BUCKET, "--queue-url", cloud.queue_url]) == 0
    assert "enqueued: 2key" in capsys.readouterr().err
    assert main(["--bucket", GALLERY_BUCKET, "--queue-url", cloud.queue_url, "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_refused_messages_are_sent_again_and_reported_when_sqs_keeps_refusing(cloud, monkeypatch):
    delays = []
    monkeypatch.setattr("lookalike.aws.backfill.time.sleep", delays.append)
    for n in range(3):
        cloud.s3.put_object(Bucket=GALLERY_BUCKET, Key=f"{n}.jpg", Body=b"x")
    flaky = CountingSqs(cloud.sqs, refuse=[{"1"}, {"1"}])
    assert Backfill(cloud.s3, flaky, GALLERY_BUCKET, cloud.queue_url).run().enqueued == 3
    assert flaky.batches == [3, 1, 1]
    assert sorted(json.loads(r["body"])["Records"][0]["s3"]["object"]["key"] for r in drain(cloud)) == [
        "0.jpg",
        "1.jpg",
        "2.jpg",
    ]

    delays.clear()
    down = CountingSqs(cloud.sqs, refuse=[{"0", "1", "2"}] * 10)
    with pytest.raises(BackfillError, match="SQS refused 3 messages \\(try again\\), first key '0.jpg'"):
        Backfill(cloud.s3, down, GALLERY_BUCKET, cloud.queue_url).run()
    assert len(down.batches) == SEND_ATTEMPTS
    assert delays == sorted(delays) and len(set(delays)) == len(delays), "no growing backoff"


def test_backfilled_messages_index_the_bucket_and_a_second_run_changes_nothing(cloud, loopback):  # noqa: F811
    gallery = {
        "kitchen/lamp 1.jpg": encode(photo("chelsea"), quality=90),
        "café/tasse.png": encode(photo("coffee"), "PNG"),
    }
    for key, payload in gallery.items():
        cloud.s3.put_object(Bucket=GALLERY_BUCKET, Key=key, Body=payload)
    indexer = load_function("indexer")
    context = LambdaContext(function_name="lookalike-indexer")
    backfill = Backfill(cloud.s3, cloud.sqs, GALLERY_BUCKET, cloud.queue_url)

    for run in range(2):
        assert backfill.run().enqueued == len(gallery)
        response = indexer.lambda_handler({"Records": drain(cloud)}, context)
        assert response["batchItemFailures"] == []
        assert sorted(OpenSearchStore.from_endpoint(loopback.url).content_hashes()) == sorted(gallery)
        assert {cloud.ledger(key)["state"] for key in gallery} == {"indexed"}
