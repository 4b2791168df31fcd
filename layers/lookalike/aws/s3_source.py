"""The gallery bucket as an `ImageSource`: object keys are image ids, S3 object tags are tags."""

from collections.abc import Iterator
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from lookalike.errors import NotFoundError

# Gallery objects are read whole into the function's memory; anything larger is no photo we
# would index, and reading it could exhaust the function and fail every record of its batch.
MAX_OBJECT_BYTES = 64 * 1024 * 1024
# GET /images/{id} redirects to a presigned URL: short-lived, so a link that leaks soon dies.
URL_EXPIRES_IN = 600


class S3UnavailableError(RuntimeError):
    """S3 failed in a way a retry may fix (throttling, a timeout, a denied request).

    Deliberately not an OSError: the indexer records an OSError as "this key cannot be read" and
    moves on, while this must fail the queue message so that it is delivered again.
    """


class ObjectTooLargeError(OSError):
    """An object larger than MAX_OBJECT_BYTES: an OSError so that the indexer records the key as
    failed, with this reason, and never retries it."""


@dataclass(frozen=True)
class ListedObject:
    key: str
    size: int
    etag: str


class S3Source:
    """Keys of one bucket (under an optional prefix; keys keep the prefix, as S3 events give them)."""

    def __init__(self, client, bucket: str, *, prefix: str = "", max_object_bytes: int = MAX_OBJECT_BYTES) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.max_object_bytes = max_object_bytes

    def keys(self) -> Iterator[str]:
        return (listed.key for listed in self.objects())

    def objects(self, start_after: str | None = None) -> Iterator[ListedObject]:
        """Every object (after `start_after`), in S3's UTF-8 binary key order; "folder"
        placeholders ending in `/` are skipped."""
        after = {"StartAfter": start_after} if start_after else {}
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix, **after)
        for page in _unavailable_as_error(pages, f"cannot list s3://{self.bucket}/{self.prefix}"):
            for listed in page.get("Contents", []):
                if not listed["Key"].endswith("/"):
                    yield ListedObject(listed["Key"], listed["Size"], listed["ETag"].strip('"'))

    def read(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except self.client.exceptions.NoSuchKey:
            raise NotFoundError(f"no gallery image {key!r}") from None
        except (BotoCoreError, ClientError) as error:
            raise S3UnavailableError(f"cannot read s3://{self.bucket}/{key}: {error}") from error
        body = response["Body"]
        with body:
            if response["ContentLength"] > self.max_object_bytes:
                raise ObjectTooLargeError(
                    f"the object is {response['ContentLength']} bytes; gallery images are read up to "
                    f"{self.max_object_bytes}"
                )
            try:
                return body.read()
            except BotoCoreError as error:
                raise S3UnavailableError(f"cannot read s3://{self.bucket}/{key}: {error}") from error

    def tags(self, key: str) -> dict[str, str]:
        """The object's S3 tags; none for an object deleted meanwhile (its removal event follows)."""
        try:
            response = self.client.get_object_tagging(Bucket=self.bucket, Key=key)
        except self.client.exceptions.NoSuchKey:
            return {}
        except (BotoCoreError, ClientError) as error:
            raise S3UnavailableError(f"cannot read the tags of s3://{self.bucket}/{key}: {error}") from error
        return {tag["Key"]: tag["Value"] for tag in response["TagSet"]}

    def url(self, key: str, expires_in: int = URL_EXPIRES_IN) -> str:
        """A presigned GET: the client fetches the bytes from S3, not through API Gateway and Lambda."""
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in
        )


def _unavailable_as_error(pages, what: str):
    try:
        yield from pages
    except (BotoCoreError, ClientError) as error:
        raise S3UnavailableError(f"{what}: {error}") from error
