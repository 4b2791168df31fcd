"""The deployment in miniature for the Lambda functions' tests: moto's S3, SQS and DynamoDB with the
buckets, queue and tables the Pulumi program creates, the loopback OpenSearch as the vector store,
the variables each function gets, and the events AWS hands the functions. The cloud adapters'
own tests (tests/aws) use the AWS part alone.

Notifications are written as S3 writes them (AWS's "Event message structure", version 2.1: keys
URL-encoded as in a form, `/` left as is, a hex sequencer per event) and travel through moto's SQS
queue, so each record the indexer sees is what Lambda's event source mapping builds from a
received message.
"""

import importlib.util
import itertools
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote_plus, urlencode

import boto3
import pytest
from moto import mock_aws

from lookalike.aws import environment

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
REGION = "eu-west-1"
ACCOUNT = "123456789012"
GALLERY_BUCKET = "lookalike-gallery"
QUERY_BUCKET = "lookalike-queries"
LEDGER_TABLE = "lookalike-ledger"
IDEMPOTENCY_TABLE = "lookalike-idempotency"
EVENTS_TABLE = "lookalike-events"
QUEUE_NAME = "lookalike-index"
# What S3 sends to the queue once, when the bucket's notification to it is configured.
S3_TEST_EVENT = {
    "Service": "Amazon S3",
    "Event": "s3:TestEvent",
    "Time": "2026-03-10T12:00:00.000Z",
    "Bucket": GALLERY_BUCKET,
    "RequestId": "5582815E1AEA5ADF",
    "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
}


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that powertools reads."""

    function_name: str = "lookalike-function"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 2048
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@dataclass
class Cloud:
    s3: object
    sqs: object
    dynamodb: object
    queue_url: str
    sequencers: itertools.count = field(default_factory=lambda: itertools.count(0x0055AED6DCD90281E5))

    # -- the gallery bucket, and what S3 tells the queue about it ---------------------------

    def put(self, key: str, data: bytes, tags: dict[str, str] | None = None) -> dict:
        """Write an object; returns the ObjectCreated:Put notification S3 sends for it."""
        extra = {"Tagging": urlencode(tags)} if tags else {}
        response = self.s3.put_object(Bucket=GALLERY_BUCKET, Key=key, Body=data, **extra)
        return self.notification("ObjectCreated:Put", key, size=len(data), etag=response["ETag"].strip('"'))

    def retag(self, key: str, tags: dict[str, str]) -> dict:
        """Replace an object's tags (none: DeleteObjectTagging); returns the ObjectTagging:Put or
        :Delete notification (no sequencer: S3 gives one to PUTs and DELETEs of objects only)."""
        if tags:
            tag_set = [{"Key": name, "Value": value} for name, value in tags.items()]
            self.s3.put_object_tagging(Bucket=GALLERY_BUCKET, Key=key, Tagging={"TagSet": tag_set})
        else:
            self.s3.delete_object_tagging(Bucket=GALLERY_BUCKET, Key=key)
        etag = self.s3.head_object(Bucket=GALLERY_BUCKET, Key=key)["ETag"].strip('"')
        return self.notification("ObjectTagging:Put" if tags else "ObjectTagging:Delete", key, etag=etag, sequenced=False)

    def delete(self, key: str) -> dict:
        self.s3.delete_object(Bucket=GALLERY_BUCKET, Key=key)
        return self.notification("ObjectRemoved:Delete", key)

    def notification(
        self, event_name: str, key: str, *, size: int | None = None, etag: str | None = None, sequenced: bool = True
    ) -> dict:
        s3_object = {"key": quote_plus(key, safe="/")}
        if sequenced:
            s3_object["sequencer"] = f"{next(self.sequencers):018X}"
        if size is not None:
            s3_object["size"] = size
        if etag is not None:
            s3_object["eTag"] = etag
        return {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "awsRegion": REGION,
                    "eventTime": "2026-03-10T12:00:00.000Z",
                    "eventName": event_name,
                    "userIdentity": {"principalId": "AWS:AIDAJEXAMPLE1234"},
                    "requestParameters": {"sourceIPAddress": "203.0.113.9"},
                    "responseElements": {"x-amz-request-id": "D82B88E5F771F645", "x-amz-id-2": "vlR7PnpV2Ce81l0PRw6j"},
                    "s3": {
                        "s3SchemaVersion": "1.0",
                        "configurationId": "gallery-changes",
                        "bucket": {
                            "name": GALLERY_BUCKET,
                            "ownerIdentity": {"principalId": "A3I5XTEXAMAI3E"},
                            "arn": f"arn:aws:s3:::{GALLERY_BUCKET}",
                        },
                        "object": s3_object,
                    },
                }
            ]
        }

    # -- the index queue -------------------------------------------------------------------

    def enqueue(self, *bodies: dict | str) -> None:
        for body in bodies:
            text = body if isinstance(body, str) else json.dumps(body)
            self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=text)

    def receive(self) -> dict:
        """Up to 10 messages as the SQS event Lambda's event source mapping hands the function."""
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
        ).get("Messages", [])
        return {"Records": [self.sqs_record(message) for message in messages]}

    def deliver(self, *bodies: dict | str) -> dict:
        self.enqueue(*bodies)
        return self.receive()

    def sqs_record(self, message: dict) -> dict:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message["Attributes"],
            "messageAttributes": {},
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{QUEUE_NAME}",
            "awsRegion": REGION,
        }

    def queued(self) -> int:
        name = "ApproximateNumberOfMessages"
        return int(self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=[name])["Attributes"][name])

    def ledger(self, key: str) -> dict | None:
        table = self.dynamodb.Table(LEDGER_TABLE)
        return table.get_item(Key={"key": f"{GALLERY_BUCKET}/{key}"}, ConsistentRead=True).get("Item")


@contextmanager
def mocked_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    """moto's AWS in REGION with the buckets, queue and tables the Pulumi program creates."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        s3 = boto3.client("s3")
        location = {"LocationConstraint": REGION}
        s3.create_bucket(Bucket=GALLERY_BUCKET, CreateBucketConfiguration=location)
        s3.create_bucket(Bucket=QUERY_BUCKET, CreateBucketConfiguration=location)
        sqs = boto3.client("sqs")
        queue_url = sqs.create_queue(QueueName=QUEUE_NAME)["QueueUrl"]
        dynamodb = boto3.resource("dynamodb")
        for name, keys in ((LEDGER_TABLE, ["key"]), (IDEMPOTENCY_TABLE, ["id"]), (EVENTS_TABLE, ["pk", "sk"])):
            dynamodb.create_table(
                TableName=name,
                KeySchema=[{"AttributeName": key, "KeyType": kind} for key, kind in zip(keys, ("HASH", "RANGE"))],
                AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"} for key in keys],
                BillingMode="PAY_PER_REQUEST",
            )
        yield Cloud(s3=s3, sqs=sqs, dynamodb=dynamodb, queue_url=queue_url)


@contextmanager
def deployment(monkeypatch: pytest.MonkeyPatch, opensearch_url: str, model_path: Path) -> Iterator[Cloud]:
    """mocked_aws, with the environment variables every function gets.

    Not POWERTOOLS_SERVICE_NAME: the stack gives each function its own, and powertools reads it
    when a module creates its Logger, so only a function started in an interpreter of its own
    can take it (tests.support.cold_start)."""
    variables = {
        "GALLERY_BUCKET": GALLERY_BUCKET,
        "QUERY_BUCKET": QUERY_BUCKET,
        "LEDGER_TABLE": LEDGER_TABLE,
        "IDEMPOTENCY_TABLE": IDEMPOTENCY_TABLE,
        "EVENTS_TABLE": EVENTS_TABLE,
        "OPENSEARCH_ENDPOINT": opensearch_url,
        "OPENSEARCH_INDEX": "lookalike",
        "KNN_M": "16",
        "KNN_EF_CONSTRUCTION": "128",
        "KNN_EF_SEARCH": "64",
        "LOOKALIKE_MODEL": str(model_path),
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with mocked_aws(monkeypatch) as cloud:
        monkeypatch.setenv("INDEX_QUEUE_URL", cloud.queue_url)
        environment.current.cache_clear()
        try:
            yield cloud
        finally:
            environment.current.cache_clear()


def load_function(name: str):
    """Import functions/<name>/app.py as a fresh module (all three are `app.py`) in a container of
    its own: a new environment, as a cold start builds it."""
    environment.current.cache_clear()
    module_name = f"lookalike_{name}_function_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(module_name, FUNCTIONS / name / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
