"""The DynamoDB tables, on demand (traffic is bursty and small; no capacity to plan).

- ledger: one item per gallery object ("bucket/key"), with the last S3 sequencer seen and the
  outcome (indexed, removed, failed + reason), so a late or repeated event cannot undo a newer one.
- idempotency: powertools' idempotency records (its default key `id` and TTL attribute `expiration`).
- events: search impressions, clicks and dwell (`pk`/`sk`), expiring through `expires_at`; point-in-time
  recovery is on because these are the only copy of the labels the model is trained on.
"""

from dataclasses import dataclass

import pulumi_aws as aws


@dataclass(frozen=True)
class Tables:
    ledger: aws.dynamodb.Table
    idempotency: aws.dynamodb.Table
    events: aws.dynamodb.Table


def tables(name: str) -> Tables:
    ledger = aws.dynamodb.Table(
        f"{name}-ledger",
        billing_mode="PAY_PER_REQUEST",
        hash_key="key",
        attributes=[{"name": "key", "type": "S"}],
    )
    idempotency = aws.dynamodb.Table(
        f"{name}-idempotency",
        billing_mode="PAY_PER_REQUEST",
        hash_key="id",
        attributes=[{"name": "id", "type": "S"}],
        ttl={"attribute_name": "expiration", "enabled": True},
    )
    events = aws.dynamodb.Table(
        f"{name}-events",
        billing_mode="PAY_PER_REQUEST",
        hash_key="pk",
        range_key="sk",
        attributes=[{"name": "pk", "type": "S"}, {"name": "sk", "type": "S"}],
        ttl={"attribute_name": "expires_at", "enabled": True},
        point_in_time_recovery={"enabled": True},
    )
    return Tables(ledger, idempotency, events)
