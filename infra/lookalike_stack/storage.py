"""The two buckets: the gallery, whose every object is indexed, and query uploads, which never are.

Both are private the same way: all four public-access blocks, default encryption (SSE-S3, so no
KMS key policy or per-request KMS charge to manage), and a bucket policy that refuses any request
not made over TLS. Query uploads live in their own bucket rather than under a gallery prefix, so no
notification filter has to be right for a query to stay out of the index; a lifecycle rule deletes
them after a day, and CORS lets the browser POST them straight to S3 with a presigned form.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from . import policies

QUERY_UPLOAD_EXPIRY_DAYS = 1


@dataclass(frozen=True)
class PrivateBucket:
    bucket: aws.s3.Bucket
    public_access_block: aws.s3.BucketPublicAccessBlock
    encryption: aws.s3.BucketServerSideEncryptionConfiguration
    policy: aws.s3.BucketPolicy

    @property
    def arn(self) -> pulumi.Output[str]:
        return self.bucket.arn


@dataclass(frozen=True)
class QueryBucket(PrivateBucket):
    lifecycle: aws.s3.BucketLifecycleConfiguration
    cors: aws.s3.BucketCorsConfiguration


def private_bucket(name: str, force_destroy: bool) -> PrivateBucket:
    bucket = aws.s3.Bucket(name, bucket_prefix=f"{name}-", force_destroy=force_destroy)
    public_access_block = aws.s3.BucketPublicAccessBlock(
        name,
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
    )
    encryption = aws.s3.BucketServerSideEncryptionConfiguration(
        name,
        bucket=bucket.id,
        rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
    )
    policy = aws.s3.BucketPolicy(
        name,
        bucket=bucket.id,
        policy=policies.document(
            [policies.deny_insecure_transport([bucket.arn, policies.objects_in(bucket.arn)], action="s3:*")]
        ),
        # S3 rejects a policy change while the public-access block is being applied.
        opts=pulumi.ResourceOptions(depends_on=[public_access_block]),
    )
    return PrivateBucket(bucket, public_access_block, encryption, policy)


def query_bucket(name: str, force_destroy: bool, cors_origins: Sequence[str]) -> QueryBucket:
    base = private_bucket(name, force_destroy)
    lifecycle = aws.s3.BucketLifecycleConfiguration(
        name,
        bucket=base.bucket.id,
        rules=[
            {
                "id": "expire-query-uploads",
                "status": "Enabled",
                "filter": {},
                "expiration": {"days": QUERY_UPLOAD_EXPIRY_DAYS},
                "abort_incomplete_multipart_upload": {"days_after_initiation": QUERY_UPLOAD_EXPIRY_DAYS},
            }
        ],
    )
    cors = aws.s3.BucketCorsConfiguration(
        name,
        bucket=base.bucket.id,
        cors_rules=[
            {
                "allowed_methods": ["POST"],
                "allowed_origins": list(cors_origins),
                "allowed_headers": ["*"],
                "expose_headers": ["ETag"],
                "max_age_seconds": 3600,
            }
        ],
    )
    return QueryBucket(base.bucket, base.public_access_block, base.encryption, base.policy, lifecycle, cors)
