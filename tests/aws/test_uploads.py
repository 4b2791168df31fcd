"""Query uploads over moto's query bucket, through QueryUploads' public methods only: a ticket is a
presigned POST that `requests` sends to moto's S3, and `read` gives back what was uploaded and
nothing else."""

import base64
import json
import time

import pytest
import requests

from lookalike.aws.s3_source import S3UnavailableError
from lookalike.aws.uploads import QueryUploads
from lookalike.errors import ImageTooLargeError, NotFoundError
from tests.support.lambda_harness import QUERY_BUCKET

UPLOAD_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def uploads(cloud) -> QueryUploads:
    return QueryUploads(cloud.s3, QUERY_BUCKET, prefix="queries/", max_bytes=1000, expires_in=60)


def test_a_ticket_takes_one_file_that_read_gives_back(uploads):
    ticket = uploads.create("image/png")
    posted = requests.post(ticket.url, data=ticket.fields, files={"file": ("query.png", b"png bytes", "image/png")})
    assert posted.status_code == 204, posted.text
    assert uploads.read(ticket.upload_id) == b"png bytes"


def test_each_ticket_is_a_new_key_bound_to_type_size_and_time(uploads):
    started = time.time()
    ticket, other = uploads.create("image/webp"), uploads.create("image/webp")
    assert ticket.upload_id != other.upload_id and len(ticket.upload_id) == 32
    assert (ticket.max_bytes, ticket.expires_in) == (1000, 60)
    assert ticket.fields["key"] == f"queries/{ticket.upload_id}" and ticket.fields["Content-Type"] == "image/webp"
    policy = json.loads(base64.b64decode(ticket.fields["policy"]))
    assert {"key": f"queries/{ticket.upload_id}"} in policy["conditions"]
    assert {"Content-Type": "image/webp"} in policy["conditions"]
    assert ["content-length-range", 1, 1000] in policy["conditions"]
    expires = time.mktime(time.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert started + 60 - 5 <= expires <= time.time() + 60 + 5


@pytest.mark.parametrize(
    "upload_id",
    [
        "cats/chelsea.JPEG",  # a gallery key
        "../queries/" + UPLOAD_ID,
        UPLOAD_ID.upper(),
        UPLOAD_ID[:-1],
        UPLOAD_ID + "0",
        "",
    ],
)
def test_what_is_not_an_upload_id_is_refused_before_any_request(upload_id):
    with pytest.raises(NotFoundError, match="upload ids come from POST /uploads"):
        QueryUploads(client=None, bucket=QUERY_BUCKET).read(upload_id)


def test_an_upload_id_never_uploaded_is_not_found(uploads):
    with pytest.raises(NotFoundError, match="it was not uploaded, or it expired"):
        uploads.read(UPLOAD_ID)


def test_an_object_over_the_limit_is_refused(cloud, uploads):
    cloud.s3.put_object(Bucket=QUERY_BUCKET, Key=f"queries/{UPLOAD_ID}", Body=b"x" * 1001)
    with pytest.raises(ImageTooLargeError, match="the upload is 1001 bytes; the limit is 1000"):
        uploads.read(UPLOAD_ID)
    cloud.s3.put_object(Bucket=QUERY_BUCKET, Key=f"queries/{UPLOAD_ID}", Body=b"x" * 1000)
    assert uploads.read(UPLOAD_ID) == b"x" * 1000


def test_s3_failing_is_an_unavailable_error(cloud):
    with pytest.raises(S3UnavailableError, match=f"cannot read upload {UPLOAD_ID}"):
        QueryUploads(cloud.s3, "a-bucket-that-does-not-exist").read(UPLOAD_ID)
