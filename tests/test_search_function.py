"""The search and admin functions on API Gateway HTTP API (2.0) events, over a gallery the indexing
function built from S3 notifications: moto's S3, SQS and DynamoDB, the loopback OpenSearch and the
real model. The upload flow runs end to end: POST /uploads, the presigned POST to moto's S3 with
`requests`, then a search by upload id."""

import base64
import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from PIL import Image
from skimage import data

from tests.support.lambda_harness import EVENTS_TABLE, GALLERY_BUCKET, QUERY_BUCKET, LambdaContext, deployment, load_function
from lookalike.aws import environment
from lookalike.aws.uploads import MAX_UPLOAD_BYTES, UPLOAD_EXPIRES_IN
from lookalike.http.admission import MAX_REQUEST_BYTES
from lookalike.http.app import create_app
from tests.support.opensearch_loopback import LoopbackOpenSearch
from tests.support.photos import encode, photo
from tests.support.api_gateway import Reply, api_event, b64

LAMP = "kitchen/lamp 1.jpg"
GALLERY = {
    "astronaut.jpg": (encode(photo("astronaut"), quality=92), None),
    "cats/chelsea.JPEG": (encode(photo("chelsea"), quality=92), None),
    "coffee": (encode(photo("coffee"), "PNG"), None),
    "rocket.webp": (encode(photo("rocket"), "WEBP", quality=90), None),
    "nested/deeper/motorcycle.png": (encode(photo("motorcycle"), "PNG"), None),
    LAMP: (encode(Image.fromarray(data.immunohistochemistry()), quality=90), {"room": "kitchen"}),
}


@pytest.fixture(scope="module")
def opensearch():
    server = LoopbackOpenSearch().start()
    yield server
    server.stop()
    assert not server.failures, server.failures[0]


@pytest.fixture(scope="module")
def cloud(opensearch, model_path):
    """The gallery put into the bucket and indexed by the indexing function from S3's notifications."""
    with pytest.MonkeyPatch.context() as monkeypatch, deployment(monkeypatch, opensearch.url, model_path) as cloud:
        indexer = load_function("indexer")
        notifications = [cloud.put(key, payload, tags) for key, (payload, tags) in GALLERY.items()]
        context = LambdaContext(function_name="lookalike-indexer")
        response = indexer.lambda_handler(cloud.deliver(*notifications), context)
        assert response["batchItemFailures"] == []
        yield cloud


@pytest.fixture(scope="module")
def search(cloud):
    return load_function("search")


def call(function, method: str, path: str, payload: dict | None = None) -> Reply:
    body = json.dumps(payload).encode() if payload is not None else None
    event = api_event(method, path, body, "application/json" if body is not None else None)
    return Reply(function.lambda_handler(event, LambdaContext(function_name="lookalike-search")))


def ids(reply: Reply) -> list[str]:
    assert reply.status == 200, reply.content
    return [hit["id"] for hit in reply.json()["results"]]


def chelsea_copy() -> bytes:
    return encode(photo("chelsea").resize((300, 200)), "PNG")


def large_chelsea() -> bytes:
    """A query over API Gateway's 10 MB: an uncompressed PNG of the cat at 2400 x 1600."""
    return encode(photo("chelsea").resize((2400, 1600)), "PNG", compress_level=0)


def test_search_by_image_ranks_the_original_first(search):
    reply = call(search, "POST", "/search", {"image": b64(chelsea_copy()), "k": 3})
    assert ids(reply)[0] == "cats/chelsea.JPEG"
    assert reply.json()["results"][0]["url"] == "/images/cats%2Fchelsea.JPEG"


def test_search_by_gallery_image_id(search):
    found = ids(call(search, "POST", "/search", {"image_id": LAMP, "k": 3}))
    assert len(found) == 3 and LAMP not in found


def test_tags_filter_through_s3_object_tags(search):
    assert ids(call(search, "POST", "/search", {"image": b64(chelsea_copy()), "tags": {"room": "kitchen"}})) == [LAMP]
    assert ids(call(search, "POST", "/search", {"image": b64(chelsea_copy()), "tags": {"room": "attic"}})) == []


def test_a_query_too_large_for_a_request_goes_through_an_upload(search, cloud):
    query = large_chelsea()
    assert MAX_REQUEST_BYTES < len(query) < MAX_UPLOAD_BYTES
    assert call(search, "POST", "/search", {"image": b64(query), "k": 1}).status == 413

    ticket = call(search, "POST", "/uploads", {"content_type": "image/png"})
    assert ticket.status == 200, ticket.content
    upload = ticket.json()
    posted = requests.post(upload["url"], data=upload["fields"], files={"file": ("query.png", query, "image/png")})
    assert posted.status_code == 204, posted.text

    reply = call(search, "POST", "/search", {"upload_id": upload["upload_id"], "k": 1})
    assert ids(reply) == ["cats/chelsea.JPEG"]

    # The query never became a gallery image: it sits in the query bucket only, nothing was queued
    # for the indexer, and the store holds the gallery alone.
    stored = cloud.s3.get_object(Bucket=QUERY_BUCKET, Key=f"uploads/{upload['upload_id']}")
    assert stored["ContentLength"] == len(query)
    gallery_keys = {item["Key"] for item in cloud.s3.list_objects_v2(Bucket=GALLERY_BUCKET)["Contents"]}
    assert gallery_keys == set(GALLERY)
    assert cloud.queued() == 0
    assert call(search, "GET", "/health").json()["gallery"] == len(GALLERY)


def test_fragments_are_suggested_for_an_upload(search):
    upload = call(search, "POST", "/uploads", {"content_type": "image/png"}).json()
    query = large_chelsea()
    posted = requests.post(upload["url"], data=upload["fields"], files={"file": ("query.png", query, "image/png")})
    assert posted.status_code == 204, posted.text
    reply = call(search, "POST", "/proposals", {"upload_id": upload["upload_id"]})
    assert reply.status == 200, reply.content
    body = reply.json()
    assert (body["width"], body["height"]) == (2400, 1600)
    assert body["proposals"], "no fragment suggested"


def test_result_events_go_to_the_events_table(search, cloud):
    results = call(search, "POST", "/search", {"image": b64(chelsea_copy()), "k": 2}).json()
    click = {
        "type": "click",
        "query_id": results["query_id"],
        "session_id": "session-0123456789",
        "image_id": results["results"][0]["id"],
        "position": 1,
    }
    accepted = call(search, "POST", "/events", {"events": [click]})
    assert accepted.status == 202, accepted.content
    assert accepted.json()["stored"] == 1
    logged = [json.loads(item["body"]) for item in cloud.dynamodb.Table(EVENTS_TABLE).scan()["Items"]]
    assert [(event["type"], event["query_id"]) for event in logged] == [("click", results["query_id"])]


def test_an_upload_is_bound_to_its_key_size_type_and_time(search):
    started = time.time()
    upload = call(search, "POST", "/uploads", {"content_type": "image/jpeg"}).json()
    assert upload["max_bytes"] == MAX_UPLOAD_BYTES and upload["expires_in"] == UPLOAD_EXPIRES_IN
    assert upload["url"] == f"https://{QUERY_BUCKET}.s3.eu-west-1.amazonaws.com/"
    fields = upload["fields"]
    assert fields["key"] == f"uploads/{upload['upload_id']}" and fields["Content-Type"] == "image/jpeg"
    policy = json.loads(base64.b64decode(fields["policy"]))
    conditions = policy["conditions"]
    assert {"bucket": QUERY_BUCKET} in conditions
    assert {"key": fields["key"]} in conditions
    assert {"Content-Type": "image/jpeg"} in conditions
    assert ["content-length-range", 1, MAX_UPLOAD_BYTES] in conditions
    expires = time.mktime(time.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert started + UPLOAD_EXPIRES_IN - 5 <= expires <= time.time() + UPLOAD_EXPIRES_IN + 5


@pytest.mark.parametrize("content_type", ["text/html", "application/octet-stream", "image/svg+xml"])
def test_uploads_take_image_types_only(search, content_type):
    reply = call(search, "POST", "/uploads", {"content_type": content_type})
    assert reply.status == 422
    assert reply.json()["error"]["message"].startswith("content_type: ")


@pytest.mark.parametrize(
    "upload_id",
    [
        "0123456789abcdef0123456789abcdef",  # well formed, never uploaded
        "cats/chelsea.JPEG",  # a gallery key
        "../uploads/0123456789abcdef0123456789abcdef",
        "0123456789ABCDEF0123456789ABCDEF",
    ],
)
def test_an_upload_id_addresses_nothing_but_an_upload(search, upload_id):
    reply = call(search, "POST", "/search", {"upload_id": upload_id})
    assert reply.status == 404, reply.content
    assert reply.json()["error"]["message"].startswith("no upload")


def test_get_image_redirects_to_a_short_lived_presigned_url(search, cloud):
    reply = call(search, "GET", "/images/kitchen%2Flamp%201.jpg")
    assert reply.status == 302
    location = urlsplit(reply.headers["Location"])
    assert (location.scheme, location.netloc, location.path) == (
        "https",
        f"{GALLERY_BUCKET}.s3.eu-west-1.amazonaws.com",
        "/kitchen/lamp%201.jpg",
    )
    assert parse_qs(location.query)["X-Amz-Expires"] == ["600"]
    assert reply.headers["Cache-Control"] == "private, max-age=60"
    fetched = requests.get(reply.headers["Location"])
    assert fetched.status_code == 200 and fetched.content == GALLERY[LAMP][0]


@pytest.mark.parametrize("path", ["/images/missing.jpg", "/images/uploads%2F0123456789abcdef0123456789abcdef"])
def test_only_gallery_images_are_redirected(search, path):
    reply = call(search, "GET", path)
    assert reply.status == 404
    assert "Location" not in reply.headers


def test_admin_routes_are_absent_from_the_search_function(search):
    assert call(search, "GET", "/blocklist").status == 404
    assert call(search, "PUT", "/blocklist/coffee").status == 404
    paths = call(search, "GET", "/openapi.json").json()["paths"]
    assert "/uploads" in paths and "/search" in paths
    assert not [path for path in paths if path.startswith("/blocklist")]


def test_the_admin_function_blocks_what_the_search_function_serves(search, cloud):
    admin = load_function("admin")
    assert "embedder" not in vars(environment.current()), "the admin function loaded the model"
    query = {"image": b64(chelsea_copy()), "k": 3}
    blocked = call(admin, "PUT", "/blocklist/cats%2Fchelsea.JPEG")
    try:
        assert blocked.status == 200 and blocked.json() == {"id": "cats/chelsea.JPEG", "blocked": True}
        assert "cats/chelsea.JPEG" not in ids(call(search, "POST", "/search", query))
        assert call(search, "GET", "/images/cats%2Fchelsea.JPEG").status == 404
    finally:
        assert call(admin, "DELETE", "/blocklist/cats%2Fchelsea.JPEG").status == 200
    assert ids(call(search, "POST", "/search", query))[0] == "cats/chelsea.JPEG"


def test_a_server_without_uploads_refuses_an_upload_id(search):
    local = create_app(search.services.search_service, search.services.gallery)
    body = json.dumps({"upload_id": "0" * 32}).encode()
    reply = Reply(local.resolve(api_event("POST", "/search", body, "application/json"), None))
    assert reply.status == 422
    assert "takes no uploads" in reply.json()["error"]["message"]
    assert call(search, "POST", "/search", {"k": 3}).json()["error"]["message"].endswith(
        "exactly one of image, image_id, upload_id"
    )
