"""Gallery changes as a queue: S3 notifications -> SQS index queue -> (the indexer) -> DLQ.

A queue between S3 and the indexer gives batching, retries with back-off, and a place where a
message that keeps failing ends up (the dead-letter queue after MAX_RECEIVES attempts) instead of
being retried forever or dropped. Only the gallery bucket, in this account, may send to the queue.
"""

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from . import policies

# Tagging too: tags filter searches, and a tag change alone sends no ObjectCreated.
GALLERY_EVENTS = ("s3:ObjectCreated:*", "s3:ObjectRemoved:*", "s3:ObjectTagging:*")
MAX_RECEIVES = 5
# AWS recommends a visibility timeout of at least six times the consuming function's timeout, so
# a message is not handed out again while a throttled or retried invocation still holds it.
VISIBILITY_TIMEOUT_FACTOR = 6
DLQ_RETENTION_S = 14 * 24 * 3600  # SQS's maximum: time to look at what failed


@dataclass(frozen=True)
class IndexFeed:
    queue: aws.sqs.Queue
    dead_letter_queue: aws.sqs.Queue
    queue_policy: aws.sqs.QueuePolicy
    notification: aws.s3.BucketNotification


def index_feed(name: str, gallery: aws.s3.Bucket, indexer_timeout_s: int) -> IndexFeed:
    dead_letter_queue = aws.sqs.Queue(
        f"{name}-dlq", message_retention_seconds=DLQ_RETENTION_S, sqs_managed_sse_enabled=True
    )
    queue = aws.sqs.Queue(
        name,
        visibility_timeout_seconds=VISIBILITY_TIMEOUT_FACTOR * indexer_timeout_s,
        sqs_managed_sse_enabled=True,
        redrive_policy=pulumi.Output.json_dumps(
            {"deadLetterTargetArn": dead_letter_queue.arn, "maxReceiveCount": MAX_RECEIVES}
        ),
    )
    account_id = aws.get_caller_identity_output().account_id
    queue_policy = aws.sqs.QueuePolicy(
        name,
        queue_url=queue.url,
        policy=policies.document(
            [
                {
                    "Sid": "GalleryNotifications",
                    "Effect": "Allow",
                    "Principal": {"Service": "s3.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue.arn,
                    # Bucket names are global: the account condition keeps a same-named bucket
                    # in another account (after this one is deleted) from feeding the queue.
                    "Condition": {
                        "ArnEquals": {"aws:SourceArn": gallery.arn},
                        "StringEquals": {"aws:SourceAccount": account_id},
                    },
                },
                policies.deny_insecure_transport([queue.arn], action="sqs:*"),
            ]
        ),
    )
    notification = aws.s3.BucketNotification(
        name,
        bucket=gallery.id,
        queues=[{"queue_arn": queue.arn, "events": list(GALLERY_EVENTS)}],
        # S3 test-sends to the queue when the notification is created; the policy must allow it first.
        opts=pulumi.ResourceOptions(depends_on=[queue_policy]),
    )
    return IndexFeed(queue, dead_letter_queue, queue_policy, notification)
