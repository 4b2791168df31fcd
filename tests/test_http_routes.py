"""The HTTP routes on API Gateway HTTP API (payload 2.0) events, as the search Lambda receives
them, over real photos, the real model and a real FAISS store."""

import errno
import json
import os

import pytest
from PIL import Image
from urllib3 import encode_multipart_formdata

from tests.support.api_gateway import Reply, api_event, b64, call, post_form, post_json
from tests.support.galleries import LAMP, LAMP_URL, chelsea_copy, collage, index_gallery
from lookalike.http.admission import MAX_REQUEST_BYTES
from lookalike.http.app import create_app
from lookalike.http.search_routes import MAX_K
from lookalike.images import FULL_DECODE_PIXELS
from lookalike.indexing import Indexer
from lookalike.proposals import Proposer
from lookalike.search import SearchService
from lookalike.sources import FolderSource
from lookalike.stores.faiss import FaissStore
from lookalike.stores.faiss import store as faiss_store
from tests.support.photos import encode, photo


def ids(reply: Reply) -> list[str]:
    return [hit["id"] for hit in reply.json()["results"]]


@pytest.fixture(scope="module")
def gallery(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("routes")
    return index_gallery(root / "gallery", root / "store", embedder)


@pytest.fixture(scope="module")
def app(gallery):
    service, source, _ = gallery
    return create_app(service, source)


def test_json_search_ranks_the_original_first(app):
    reply = post_json(app, {"image": b64(chelsea_copy()), "k": 3})
    assert reply.status == 200, reply.content
    body = reply.json()
    assert body["k"] == 3 and body["took_ms"] >= 0
    results = body["results"]
    assert [set(hit) for hit in results] == [{"id", "score", "url"}] * 3
    assert results[0]["id"] == "cats/chelsea.JPEG"
    assert results[0]["url"] == "/images/cats%2Fchelsea.JPEG"
    assert results[0]["score"] >= results[1]["score"] >= results[2]["score"]


def test_multipart_and_base64_json_rank_alike(app):
    query = chelsea_copy()
    as_form = post_form(app, query, k="5", dedupe="false")
    as_json = post_json(app, {"image": b64(query), "k": 5, "dedupe": False})
    assert as_form.status == as_json.status == 200
    assert as_form.json()["results"] == as_json.json()["results"]


def test_a_data_url_is_accepted_as_base64(app):
    reply = post_json(app, {"image": "data:image/png;base64," + b64(chelsea_copy()), "k": 1})
    assert ids(reply) == ["cats/chelsea.JPEG"]


def test_box_searches_the_fragment(app):
    query = collage()
    assert ids(post_json(app, {"image": b64(query), "box": [0, 0, 400, 300], "k": 1})) == ["coffee"]
    assert ids(post_json(app, {"image": b64(query), "box": [400, 0, 800, 300], "k": 1})) == ["rocket.webp"]
    assert ids(post_form(app, query, box="400,0,800,300", k="1")) == ["rocket.webp"]
    assert ids(post_form(app, query, box="[0, 0, 400, 300]", k="1")) == ["coffee"]


def test_tags_filter_results(app):
    reply = post_json(app, {"image": b64(chelsea_copy()), "tags": {"room": "kitchen"}})
    assert ids(reply) == [LAMP]
    assert ids(post_form(app, chelsea_copy(), tags='{"room": "kitchen"}')) == [LAMP]


def test_more_like_a_gallery_image_never_returns_that_image(app, gallery):
    _, _, files = gallery
    by_id = post_json(app, {"image_id": "cats/chelsea.JPEG", "k": 3, "dedupe": False})
    by_bytes = post_json(app, {"image": b64(files["cats/chelsea.JPEG"].read_bytes()), "k": 3, "dedupe": False})
    assert by_id.status == 200, by_id.content
    assert "cats/chelsea.JPEG" not in ids(by_id)
    assert by_id.json()["results"] == by_bytes.json()["results"]
    body, content_type = encode_multipart_formdata({"image_id": LAMP, "k": "2"})
    as_form = call(app, "POST", "/search", body, content_type)
    assert as_form.status == 200 and LAMP not in ids(as_form)


@pytest.mark.parametrize(
    "payload, status, message",
    [
        ({"image_id": "no/such.jpg"}, 404, "no gallery image"),
        ({"image_id": "../secret.txt"}, 404, "no gallery image"),
        ({"k": 3}, 422, "exactly one of image, image_id"),
        ({"image": b64(b"x" * 10), "image_id": LAMP}, 422, "exactly one of image, image_id"),
    ],
)
def test_the_query_image_is_named_exactly_once(app, payload, status, message):
    reply = post_json(app, payload)
    assert reply.status == status, reply.content
    assert message in reply.json()["error"]["message"]


def test_the_url_of_a_result_serves_its_bytes(app, gallery):
    _, _, files = gallery
    lamp_copy = encode(Image.open(files[LAMP]).resize((256, 256)), "PNG")
    (hit,) = post_json(app, {"image": b64(lamp_copy), "k": 1}).json()["results"]
    assert hit["id"] == LAMP
    url = hit["url"]
    assert url == LAMP_URL
    reply = call(app, "GET", url)
    assert reply.status == 200
    assert reply.base64, "binary bodies go back base64-encoded"
    assert reply.headers["Content-Type"] == "image/jpeg"
    assert reply.content == files[LAMP].read_bytes()


@pytest.mark.parametrize(
    ("key", "content_type"),
    [("coffee", "image/png"), ("rocket.webp", "image/webp"), ("nested%2Fdeeper%2Fmotorcycle.png", "image/png")],
)
def test_content_type_comes_from_the_bytes(app, key, content_type):
    reply = call(app, "GET", f"/images/{key}")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == content_type


@pytest.mark.parametrize(
    "path",
    [
        "/images/missing.jpg",
        "/images/..%2Fsecret.txt",
        "/images/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/images/%2Fetc%2Fpasswd",
        "/images/kitchen%2F.tags.json",
        "/images/kitchen%2F..%2F..%2Fsecret.txt",
        "/images/../secret.txt",
    ],
)
def test_only_gallery_images_are_served(app, path):
    reply = call(app, "GET", path)
    assert reply.status == 404
    assert reply.json()["error"]["status"] == 404
    assert b"outside the gallery" not in reply.content


def error_cases():
    jpeg = encode(photo("chelsea"), quality=90)
    image = b64(jpeg)
    json_type = "application/json"
    yield "garbage bytes", 415, json.dumps({"image": b64(b"this is not an image at all")}), json_type
    yield "truncated JPEG", 415, json.dumps({"image": b64(jpeg[: len(jpeg) // 2])}), json_type
    yield "box outside the image", 422, json.dumps({"image": image, "box": [0, 0, 5000, 5000]}), json_type
    yield "inverted box", 422, json.dumps({"image": image, "box": [200, 200, 10, 10]}), json_type
    yield "box of three numbers", 422, json.dumps({"image": image, "box": [0, 0, 10]}), json_type
    yield "k=0", 422, json.dumps({"image": image, "k": 0}), json_type
    yield "k=10000", 422, json.dumps({"image": image, "k": 10000}), json_type
    yield "k not a number", 422, json.dumps({"image": image, "k": "many"}), json_type
    yield "unknown field", 422, json.dumps({"image": image, "bbox": [0, 0, 10, 10]}), json_type
    yield "image not base64", 422, json.dumps({"image": "not base64!"}), json_type
    yield "missing image", 422, json.dumps({"k": 3}), json_type
    yield "empty body", 422, "", json_type
    yield "JSON not an object", 422, "[1, 2, 3]", json_type
    yield "malformed JSON", 400, '{"image": ', json_type
    yield "bytes that are not UTF-8 JSON", 400, b"\xff\xd8\xff\xe0", None
    yield "an image posted raw", 415, jpeg, "image/jpeg"
    yield "over the size limit", 413, json.dumps({"image": b64(b"\0" * MAX_REQUEST_BYTES)}), json_type


@pytest.mark.parametrize(
    ("status", "body", "content_type"), [case[1:] for case in error_cases()], ids=[case[0] for case in error_cases()]
)
def test_bad_requests_get_a_json_error_never_a_500(app, status, body, content_type):
    reply = call(app, "POST", "/search", body if isinstance(body, bytes) else body.encode(), content_type)
    assert reply.status == status, reply.content
    assert reply.headers["Content-Type"] == "application/json"
    error = reply.json()["error"]
    assert error["status"] == status and error["message"]


def test_validation_messages_name_the_field(app):
    message = post_json(app, {"image": b64(b"x"), "k": 10000}).json()["error"]["message"]
    assert message.startswith("k: ") and str(MAX_K) in message


def test_a_broken_multipart_body_is_a_400(app):
    body = b'--xx\r\nContent-Disposition: form-data; name="image"\r\n\r\n\xff\xd8\xff\r\n--xx--\r\n'
    assert call(app, "POST", "/search", body, "multipart/form-data; boundary=xx").status == 400
    assert call(app, "POST", "/search", b"abc", "multipart/form-data").status == 400


def test_unknown_routes_are_json_404s(app):
    reply = call(app, "GET", "/nowhere")
    assert reply.status == 404
    assert reply.json() == {"error": {"status": 404, "message": "no route for GET /nowhere"}}


def test_health(app, gallery, embedder):
    _, _, files = gallery
    reply = call(app, "GET", "/health")
    assert reply.status == 200
    body = reply.json()
    assert body["status"] == "ok"
    assert body["gallery"] == len(files)
    assert body["model"] == {"name": embedder.info.name, "version": embedder.info.version}


def test_openapi_document_lists_the_routes(app):
    reply = call(app, "GET", "/openapi.json")
    assert reply.status == 200
    document = reply.json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {"/search", "/images/{image_id}", "/health", "/blocklist", "/blocklist/{image_id}"}
    body = document["paths"]["/search"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "multipart/form-data"}
    assert body["multipart/form-data"]["schema"]["properties"]["image"]["format"] == "binary"
    assert set(document["paths"]["/blocklist/{image_id}"]) == {"put", "delete"}


def test_admin_routes_can_be_left_out(gallery):
    service, source, _ = gallery
    public = create_app(service, source, admin=False)
    assert call(public, "GET", "/blocklist").status == 404
    assert call(public, "PUT", "/blocklist/coffee").status == 404
    assert "/blocklist" not in Reply(public.resolve(api_event("GET", "/openapi.json"), None)).json()["paths"]


def test_block_list_changes_results(tmp_path, embedder):
    service, source, _ = index_gallery(tmp_path / "gallery", tmp_path / "store", embedder)
    app = create_app(service, source)
    query = {"image": b64(chelsea_copy()), "k": 3}
    assert ids(post_json(app, query))[0] == "cats/chelsea.JPEG"

    blocked = call(app, "PUT", "/blocklist/cats%2Fchelsea.JPEG")
    assert blocked.status == 200 and blocked.json() == {"id": "cats/chelsea.JPEG", "blocked": True}
    assert call(app, "GET", "/blocklist").json() == {"ids": ["cats/chelsea.JPEG"]}
    assert "cats/chelsea.JPEG" not in ids(post_json(app, query))
    assert len(ids(post_json(app, query))) == 3
    assert call(app, "GET", "/images/cats%2Fchelsea.JPEG").status == 404
    assert post_json(app, {"image_id": "cats/chelsea.JPEG"}).status == 404

    unblocked = call(app, "DELETE", "/blocklist/cats%2Fchelsea.JPEG")
    assert unblocked.status == 200 and unblocked.json() == {"id": "cats/chelsea.JPEG", "blocked": False}
    assert call(app, "GET", "/blocklist").json() == {"ids": []}
    assert ids(post_json(app, query))[0] == "cats/chelsea.JPEG"
    assert call(app, "GET", "/images/cats%2Fchelsea.JPEG").status == 200


class BrokenStore:
    """The real store with one bug of ours: count() fails."""

    def __init__(self, store) -> None:
        self._store = store

    def __getattr__(self, name):
        return getattr(self._store, name)

    def count(self) -> int:
        raise RuntimeError("the store's disk is on fire")


def test_a_bug_of_ours_is_a_generic_500(gallery, embedder):
    service, source, _ = gallery
    app = create_app(SearchService(embedder, BrokenStore(service.store)), source)
    reply = call(app, "GET", "/health")
    assert reply.status == 500
    assert reply.json() == {"error": {"status": 500, "message": "internal error"}}


def test_a_block_the_disk_refuses_answers_503_and_never_takes_effect(tmp_path, embedder, monkeypatch):
    service, source, _ = index_gallery(tmp_path / "gallery", tmp_path / "store", embedder)
    app = create_app(service, source)
    monkeypatch.setattr(faiss_store, "WRITE_RETRY_DELAYS", (0, 0))
    monkeypatch.setattr(service.store, "_write_generation", _disk_full)

    refused = call(app, "PUT", "/blocklist/cats%2Fchelsea.JPEG")
    assert refused.status == 503, refused.body
    assert "No space left on device" in refused.json()["error"]["message"]
    assert call(app, "GET", "/blocklist").json() == {"ids": []}

    monkeypatch.undo()
    call(app, "PUT", "/blocklist/coffee")
    assert FaissStore(tmp_path / "store").blocked() == {"coffee"}


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_large_gallery_png_is_searchable_by_id_while_the_same_bytes_uploaded_are_refused(tmp_path, embedder):
    """The request budget bounds what a stranger's bytes cost to decode; a gallery image named by id
    was decoded whole when it was indexed, so "more like this" works for every gallery image."""
    root = tmp_path / "gallery"
    root.mkdir()
    large = photo("coffee").resize((2500, 1700))  # 4.25 MP: over the request budget, a PNG decodes whole
    assert large.width * large.height > FULL_DECODE_PIXELS
    (root / "large.png").write_bytes(encode(large, "PNG"))
    (root / "chelsea.jpg").write_bytes(encode(photo("chelsea")))
    store = FaissStore(tmp_path / "store")
    Indexer(FolderSource(root), embedder, store).sync()
    app = create_app(SearchService(embedder, store), FolderSource(root), proposer=Proposer(embedder))
    assert post_json(app, {"image": b64((root / "large.png").read_bytes()), "k": 1}).status == 413
    by_id = post_json(app, {"image_id": "large.png", "k": 1})
    assert by_id.status == 200, by_id.content
    assert ids(by_id) == ["chelsea.jpg"]
    proposals = call(app, "POST", "/proposals", json.dumps({"image_id": "large.png"}).encode(), "application/json")
    assert proposals.status == 200, proposals.content
