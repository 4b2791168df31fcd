"""What each function's role may do: only what its handler calls, on only the resources it uses.

- indexer: read gallery objects and their tags, consume the index queue, its ledger and
  idempotency tables, write the vector index.
- search: read gallery objects (images by id, presigned GETs), put and read query uploads
  (presigned POSTs are signed with this role), write events, read the vector index.
- admin: write the vector index (block list, deletes, reindex), list the gallery and send to the
  index queue (backfill).

`s3:ListBucket` is granted where a missing key must read as 404 NoSuchKey rather than 403.
"""

import pulumi
import pulumi_aws as aws

from . import policies
from .index_feed import IndexFeed
from .storage import PrivateBucket
from .tables import Tables
from .vector_search import VectorSearch

TABLE_ITEM_ACTIONS = ("dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")
QUEUE_CONSUMER_ACTIONS = ("sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage")
# X-Ray's PutTraceSegments and PutTelemetryRecords support no resource-level permissions: AWS
# requires "*" as their resource. It is the only wildcard resource the functions get.
XRAY_ACTIONS = ("xray:PutTelemetryRecords", "xray:PutTraceSegments")


def runtime_statements(log_group: aws.cloudwatch.LogGroup, tracing: bool) -> list[policies.Statement]:
    statements = [
        policies.allow(
            "WriteOwnLogs", ["logs:CreateLogStream", "logs:PutLogEvents"], [pulumi.Output.concat(log_group.arn, ":*")]
        )
    ]
    if tracing:
        statements.append(policies.allow("XRayTraces", XRAY_ACTIONS, ["*"]))
    return statements


def indexer_statements(
    gallery: PrivateBucket, feed: IndexFeed, tables: Tables, vectors: VectorSearch
) -> list[policies.Statement]:
    return [
        policies.allow("ReadGalleryObjects", ["s3:GetObject", "s3:GetObjectTagging"], [policies.objects_in(gallery.arn)]),
        policies.allow("ListGallery", ["s3:ListBucket"], [gallery.arn]),
        policies.allow("ConsumeIndexQueue", QUEUE_CONSUMER_ACTIONS, [feed.queue.arn]),
        policies.allow("LedgerAndIdempotency", TABLE_ITEM_ACTIONS, [tables.ledger.arn, tables.idempotency.arn]),
        *vectors.iam_statements("write"),
    ]


def search_statements(
    gallery: PrivateBucket, query: PrivateBucket, tables: Tables, vectors: VectorSearch
) -> list[policies.Statement]:
    return [
        policies.allow("ReadGalleryObjects", ["s3:GetObject"], [policies.objects_in(gallery.arn)]),
        policies.allow("ListGallery", ["s3:ListBucket"], [gallery.arn]),
        policies.allow("QueryUploads", ["s3:GetObject", "s3:PutObject"], [policies.objects_in(query.arn)]),
        policies.allow("ListQueryUploads", ["s3:ListBucket"], [query.arn]),
        # The event log writes with TransactWriteItems of conditional Puts, which IAM authorizes as PutItem.
        policies.allow("WriteEvents", ["dynamodb:PutItem"], [tables.events.arn]),
        *vectors.iam_statements("read"),
    ]


def admin_statements(gallery: PrivateBucket, feed: IndexFeed, vectors: VectorSearch) -> list[policies.Statement]:
    return [
        policies.allow("ListGalleryForBackfill", ["s3:ListBucket"], [gallery.arn]),
        policies.allow("EnqueueBackfill", ["sqs:SendMessage"], [feed.queue.arn]),
        *vectors.iam_statements("admin"),
    ]
