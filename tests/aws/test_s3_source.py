"""The gallery bucket as an image source, over moto's S3: keys, bytes, tags, the size limit, the
errors a retry may fix (which must not look like a key that cannot be read), presigned URLs."""

import hashlib
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ReadTimeoutError

from lookalike.aws.s3_source import URL_EXPIRES_IN, ListedObject, ObjectTooLargeError, S3Source, S3UnavailableError
from lookalike.errors import NotFoundError
from tests.support.lambda_harness import GALLERY_BUCKET, REGION

LAMP = "kitchen/lamp 1.jpg"
GALLERY = {
    LAMP: b"a lamp",
    "kitchen/": b"",  # a "folder" placeholder, as the S3 console creates them
    "kitchen/tasse.png": b"a cup",
    "été/chalet.webp": b"a chalet",
    "astronaut.jpg": b"an astronaut",
}


@pytest.fixture
def gallery(cloud) -> S3Source:
    for key, payload in GALLERY.items():
        cloud.s3.put_object(Bucket=GALLERY_BUCKET, Key=key, Body=payload)
    return S3Source(cloud.s3, GALLERY_BUCKET)


@pytest.fixture
def no_bucket(cloud) -> S3Source:
    """A source whose bucket is gone: every request fails the way S3 fails when unavailable."""
    return S3Source(cloud.s3, "a-bucket-that-does-not-exist")


def test_keys_are_every_object_in_key_order_without_folder_placeholders(gallery):
    assert list(gallery.keys()) == ["astronaut.jpg", "kitchen/lamp 1.jpg", "kitchen/tasse.png", "été/chalet.webp"]


def test_keys_under_a_prefix_keep_the_prefix(cloud, gallery):
    assert list(S3Source(cloud.s3, GALLERY_BUCKET, prefix="kitchen/").keys()) == [LAMP, "kitchen/tasse.png"]


def test_objects_go_on_after_a_key_with_their_size_and_etag(gallery):
    assert list(gallery.objects(start_after=LAMP)) == [
        ListedObject("kitchen/tasse.png", len(b"a cup"), hashlib.md5(b"a cup").hexdigest()),
        ListedObject("été/chalet.webp", len(b"a chalet"), hashlib.md5(b"a chalet").hexdigest()),
    ]


def test_read_gives_the_bytes_and_a_missing_key_is_not_found(gallery):
    assert gallery.read(LAMP) == b"a lamp"
    with pytest.raises(NotFoundError, match="no gallery image 'missing.jpg'"):
        gallery.read("missing.jpg")


def test_an_object_over_the_limit_is_a_key_that_cannot_be_read(cloud, gallery):
    small = S3Source(cloud.s3, GALLERY_BUCKET, max_object_bytes=len(b"a lamp") - 1)
    with pytest.raises(ObjectTooLargeError, match="the object is 6 bytes; gallery images are read up to 5") as refused:
        small.read(LAMP)
    assert isinstance(refused.value, OSError), "the indexer would not record the key as failed"
    assert S3Source(cloud.s3, GALLERY_BUCKET, max_object_bytes=len(b"a lamp")).read(LAMP) == b"a lamp"


def test_tags_are_the_objects_s3_tags(cloud, gallery):
    cloud.s3.put_object_tagging(
        Bucket=GALLERY_BUCKET,
        Key=LAMP,
        Tagging={"TagSet": [{"Key": "room", "Value": "kitchen"}, {"Key": "sale", "Value": "yes"}]},
    )
    assert gallery.tags(LAMP) == {"room": "kitchen", "sale": "yes"}
    assert gallery.tags("astronaut.jpg") == {}
    assert gallery.tags("deleted-meanwhile.jpg") == {}


@pytest.mark.parametrize(
    "request_of",
    [lambda source: source.read(LAMP), lambda source: source.tags(LAMP), lambda source: list(source.keys())],
    ids=["read", "tags", "keys"],
)
def test_s3_failing_is_an_unavailable_error_that_is_no_oserror(no_bucket, request_of):
    with pytest.raises(S3UnavailableError, match="a-bucket-that-does-not-exist") as failed:
        request_of(no_bucket)
    assert not isinstance(failed.value, OSError), "the indexer would record a retryable failure as final"


def test_a_read_cut_short_is_an_unavailable_error(cloud, gallery, monkeypatch):
    get_object = cloud.s3.get_object

    def time_out(*args):
        raise ReadTimeoutError(endpoint_url=f"https://s3.{REGION}.amazonaws.com")

    def times_out_reading(**request):
        response = get_object(**request)
        monkeypatch.setattr(response["Body"], "read", time_out)
        return response

    monkeypatch.setattr(cloud.s3, "get_object", times_out_reading)
    with pytest.raises(S3UnavailableError, match=f"cannot read s3://{GALLERY_BUCKET}/{LAMP}"):
        gallery.read(LAMP)


def test_url_is_a_short_lived_presigned_get_of_the_object(gallery):
    signing = S3Source(boto3.client("s3", config=Config(signature_version="s3v4")), GALLERY_BUCKET)  # as deployed
    url = signing.url(LAMP)
    location = urlsplit(url)
    assert location.netloc.startswith(f"{GALLERY_BUCKET}.s3.") and location.path == "/kitchen/lamp%201.jpg"
    assert parse_qs(location.query)["X-Amz-Expires"] == [str(URL_EXPIRES_IN)]
    assert parse_qs(urlsplit(signing.url(LAMP, expires_in=30)).query)["X-Amz-Expires"] == ["30"]
    fetched = requests.get(url)
    assert (fetched.status_code, fetched.content) == (200, b"a lamp")
