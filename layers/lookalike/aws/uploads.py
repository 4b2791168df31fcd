"""Query uploads in S3, the cloud's `QueryUploadStore`: a presigned POST into the query bucket,
read back by its upload id.

The query bucket is not the gallery: it sends no notifications, so nothing uploaded here is ever
indexed, and a lifecycle rule deletes uploads after a day. An upload id is a random 128-bit hex
string and the only thing a client names; the key is built from it, so an id can address no
other object (no `../`, no prefix escape, no gallery key).
"""

import re
import uuid

from botocore.exceptions import BotoCoreError, ClientError

from lookalike.aws.s3_source import S3UnavailableError
from lookalike.errors import ImageTooLargeError, NotFoundError
from lookalike.uploads import UploadTicket

UPLOAD_PREFIX = "uploads/"
# Twice API Gateway's request limit: a phone photo fits, a video does not.
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
# Seconds between handing out an upload and S3 accepting the POST: enough for a slow phone link.
UPLOAD_EXPIRES_IN = 300
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")


class QueryUploads:
    def __init__(
        self,
        client,
        bucket: str,
        *,
        prefix: str = UPLOAD_PREFIX,
        max_bytes: int = MAX_UPLOAD_BYTES,
        expires_in: int = UPLOAD_EXPIRES_IN,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.expires_in = expires_in

    def create(self, content_type: str) -> UploadTicket:
        """A presigned POST for one new key: S3 itself refuses another key, an empty or oversized
        file and another Content-Type, and the policy expires after `expires_in` seconds."""
        upload_id = uuid.uuid4().hex
        post = self.client.generate_presigned_post(
            Bucket=self.bucket,
            Key=self.prefix + upload_id,
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, self.max_bytes]],
            ExpiresIn=self.expires_in,
        )
        return UploadTicket(
            upload_id=upload_id,
            url=post["url"],
            fields=post["fields"],
            max_bytes=self.max_bytes,
            expires_in=self.expires_in,
        )

    def read(self, upload_id: str) -> bytes:
        if not _UPLOAD_ID.fullmatch(upload_id):
            raise NotFoundError(f"no upload {upload_id!r}: upload ids come from POST /uploads")
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.prefix + upload_id)
        except self.client.exceptions.NoSuchKey:
            raise NotFoundError(f"no upload {upload_id!r}: it was not uploaded, or it expired") from None
        except (BotoCoreError, ClientError) as error:
            raise S3UnavailableError(f"cannot read upload {upload_id}: {error}") from error
        with response["Body"] as body:
            # The policy caps the size; this guards the function's memory should anything else write here.
            size = response["ContentLength"]
            if size > self.max_bytes:
                raise ImageTooLargeError(f"the upload is {size} bytes; the limit is {self.max_bytes}")
            return body.read()
