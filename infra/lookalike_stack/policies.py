"""IAM policy documents as plain dicts whose values may be Outputs, serialized in one place.

Allow statements always name their actions; the only wildcard resources are those AWS requires
(X-Ray's trace upload has no resource-level permissions), and `deny_insecure_transport` is a Deny.
"""

from collections.abc import Sequence
from typing import Any

import pulumi

Statement = dict[str, Any]


def document(statements: Sequence[Statement]) -> pulumi.Output[str]:
    return pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(sid: str, actions: Sequence[str], resources: Sequence[Any]) -> Statement:
    if any("*" in action for action in actions):
        raise ValueError(f"{sid}: name each action, no wildcards ({', '.join(actions)})")
    return {"Sid": sid, "Effect": "Allow", "Action": sorted(actions), "Resource": list(resources)}


def assume_role(service: str) -> pulumi.Output[str]:
    return pulumi.Output.json_dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
        }
    )


def deny_insecure_transport(resources: Sequence[Any], action: str, principal: Any = "*") -> Statement:
    """Refuse plain-HTTP requests outright, whoever makes them (TLS-only)."""
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": principal,
        "Action": action,
        "Resource": list(resources),
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def objects_in(bucket_arn: pulumi.Output[str]) -> pulumi.Output[str]:
    return pulumi.Output.concat(bucket_arn, "/*")
