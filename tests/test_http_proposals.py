"""POST /proposals through the real app (API Gateway events, the real model, a real FAISS store)."""

import json

import pytest
from PIL import Image
from urllib3 import encode_multipart_formdata

from lookalike.http.app import create_app
from lookalike.proposals import MAX_PROPOSALS, Proposer, iou
from tests.support.photos import encode, photo
from tests.support.api_gateway import b64, call
from tests.support.galleries import index_gallery


def pasted_cat() -> tuple[bytes, tuple[int, int, int, int]]:
    """chelsea, reduced, on a white 640x480 canvas: its box is what a good proposal finds."""
    cat = photo("chelsea")
    cat.thumbnail((240, 240))
    canvas = Image.new("RGB", (640, 480), (255, 255, 255))
    canvas.paste(cat, (360, 200))
    return encode(canvas, quality=92), (360, 200, 360 + cat.width, 200 + cat.height)


def post_proposals(app, payload: dict):
    return call(app, "POST", "/proposals", json.dumps(payload).encode(), "application/json")


@pytest.fixture(scope="module")
def gallery(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("proposals")
    return index_gallery(root / "gallery", root / "store", embedder)


@pytest.fixture(scope="module")
def app(gallery, embedder):
    service, source, _ = gallery
    return create_app(service, source, proposer=Proposer(embedder))


def test_proposals_for_an_uploaded_image(app):
    image, truth = pasted_cat()
    reply = post_proposals(app, {"image": b64(image)})
    assert reply.status == 200, reply.content
    body = reply.json()
    assert set(body) == {"width", "height", "proposals"}
    assert (body["width"], body["height"]) == (640, 480)
    proposals = body["proposals"]
    assert 1 <= len(proposals) <= MAX_PROPOSALS
    assert [p["score"] for p in proposals] == sorted((p["score"] for p in proposals), reverse=True)
    for p in proposals:
        x0, y0, x1, y1 = p["box"]
        assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480
    assert max(iou(tuple(p["box"]), truth) for p in proposals[:3]) >= 0.5


def test_a_proposal_is_a_box_search_accepts(app):
    image, _ = pasted_cat()
    best = post_proposals(app, {"image": b64(image)}).json()["proposals"][0]
    search = {"image": b64(image), "box": best["box"], "k": 1}
    reply = call(app, "POST", "/search", json.dumps(search).encode(), "application/json")
    assert reply.status == 200, reply.content
    assert len(reply.json()["results"]) == 1


def test_multipart_and_gallery_ids_name_the_image_as_search_does(app, gallery):
    _, _, files = gallery
    by_id = post_proposals(app, {"image_id": "cats/chelsea.JPEG"})
    assert by_id.status == 200, by_id.content
    cat = files["cats/chelsea.JPEG"].read_bytes()
    body, content_type = encode_multipart_formdata({"image": ("q.jpg", cat, "image/jpeg")})
    by_bytes = post_proposals(app, {"image": b64(cat)})
    as_form = call(app, "POST", "/proposals", body, content_type)
    assert by_id.json() == by_bytes.json() == as_form.json()
    assert (by_id.json()["width"], by_id.json()["height"]) == Image.open(files["cats/chelsea.JPEG"]).size


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        ({"image": b64(b"not an image at all")}, 415, "not a JPEG"),
        ({"image_id": "no/such.jpg"}, 404, "no gallery image"),
        ({}, 422, "exactly one of"),
        ({"image": b64(encode(photo("coffee"))), "box": [0, 0, 10, 10]}, 422, "unknown field"),
    ],
)
def test_bad_requests_are_refused_with_the_usual_errors(app, payload, status, message):
    reply = post_proposals(app, payload)
    assert reply.status == status, reply.content
    assert message in reply.json()["error"]["message"]


def test_without_a_proposer_there_is_no_route(gallery):
    service, source, _ = gallery
    reply = post_proposals(create_app(service, source), {"image": b64(pasted_cat()[0])})
    assert reply.status == 404


def test_the_route_is_in_the_openapi_document(app):
    document = call(app, "GET", "/openapi.json").json()
    assert "/proposals" in document["paths"]
