"""The local server over real HTTP: a real socket, `requests`, the real model and store."""

import base64
import socket
import threading
import time

import pytest
import requests

from lookalike.http.admission import MAX_REQUEST_BYTES
from lookalike.http.app import create_app
from lookalike.http.resolver import ThreadSafeResolver
from lookalike.http.server import http_event, make_server
from tests.support.photos import encode, photo
from tests.support.galleries import LAMP, LAMP_URL, chelsea_copy, collage, index_gallery


@pytest.fixture(scope="module")
def gallery(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("server")
    return index_gallery(root / "gallery", root / "store", embedder)


@pytest.fixture(scope="module")
def server(gallery):
    service, source, _ = gallery
    server = make_server(create_app(service, source), "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def url(server):
    return f"http://127.0.0.1:{server.server_port}"


def search_form(url, image: bytes, **fields) -> requests.Response:
    return requests.post(f"{url}/search", files={"image": ("query.jpg", image, "image/jpeg")}, data=fields, timeout=60)


def search_json(url, image: bytes, **fields) -> requests.Response:
    return requests.post(f"{url}/search", json={"image": base64.b64encode(image).decode(), **fields}, timeout=60)


def ids(response: requests.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [hit["id"] for hit in response.json()["results"]]


def raw(server, request: bytes) -> bytes:
    """Send bytes as they are (no client tidies them up) and read the whole answer."""
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=30) as connection:
        connection.sendall(request)
        connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def test_multipart_and_base64_json_return_the_same_ranking(url):
    query = chelsea_copy()
    as_form = search_form(url, query, k="5")
    as_json = search_json(url, query, k=5)
    assert ids(as_form)[0] == "cats/chelsea.JPEG"
    assert as_form.json()["results"] == as_json.json()["results"]
    assert len(as_form.json()["results"]) == 5


def test_box_crops_the_query(url):
    query = collage()
    assert ids(search_form(url, query, box="0,0,400,300", k="1")) == ["coffee"]
    assert ids(search_json(url, query, box=[400, 0, 800, 300], k=1)) == ["rocket.webp"]


@pytest.mark.parametrize(
    ("name", "status", "send"),
    [
        ("garbage bytes", 415, lambda url: search_form(url, b"\x00garbage, not a picture" * 50)),
        ("truncated JPEG", 415, lambda url: search_form(url, encode(photo("coffee"))[:4000])),
        ("box outside the image", 422, lambda url: search_form(url, chelsea_copy(), box="0,0,5000,5000")),
        ("box not four numbers", 422, lambda url: search_json(url, chelsea_copy(), box=[1, 2, 3])),
        ("k=0", 422, lambda url: search_form(url, chelsea_copy(), k="0")),
        ("k=10000", 422, lambda url: search_json(url, chelsea_copy(), k=10000)),
        ("malformed JSON", 400, lambda url: requests.post(
            f"{url}/search", data=b'{"image": "abc', headers={"Content-Type": "application/json"}, timeout=60)),
        ("missing image (422, like any missing field)", 422, lambda url: requests.post(
            f"{url}/search", files={"k": (None, "3")}, timeout=60)),
        ("oversized body", 413, lambda url: requests.post(
            f"{url}/search", data=b"0" * (MAX_REQUEST_BYTES + 1), headers={"Content-Type": "application/json"},
            timeout=60)),
    ],
)
def test_bad_requests_get_json_errors(url, name, status, send):
    response = send(url)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["status"] == status


def test_a_result_url_serves_identical_bytes(url, gallery):
    _, _, files = gallery
    response = requests.get(url + LAMP_URL, timeout=60)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/jpeg"
    assert response.content == files[LAMP].read_bytes()
    png = requests.get(f"{url}/images/nested%2Fdeeper%2Fmotorcycle.png", timeout=60)
    assert png.headers["Content-Type"] == "image/png"
    assert png.content == files["nested/deeper/motorcycle.png"].read_bytes()


@pytest.mark.parametrize(
    "target",
    [
        b"/images/missing.jpg",
        b"/images/..%2Fsecret.txt",
        b"/images/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        b"/images/../secret.txt",
        b"/images/../../../../etc/passwd",
        b"/images/kitchen%2F.tags.json",
    ],
)
def test_missing_and_escaping_ids_are_404(server, target):
    answer = raw(server, b"GET " + target + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 404 ")
    assert b'"status": 404' in answer or b'"status":404' in answer
    assert b"outside the gallery" not in answer and b"root:" not in answer


def test_health_and_openapi(url, gallery):
    _, _, files = gallery
    health = requests.get(f"{url}/health", timeout=60).json()
    assert health["status"] == "ok" and health["gallery"] == len(files)
    document = requests.get(f"{url}/openapi.json", timeout=60).json()
    assert {"/search", "/images/{image_id}", "/health", "/blocklist", "/blocklist/{image_id}"} <= set(document["paths"])


def test_block_list_add_and_remove_change_results(url):
    query = chelsea_copy()
    assert ids(search_form(url, query, k="3"))[0] == "cats/chelsea.JPEG"
    try:
        assert requests.put(f"{url}/blocklist/cats%2Fchelsea.JPEG", timeout=60).status_code == 200
        assert requests.get(f"{url}/blocklist", timeout=60).json() == {"ids": ["cats/chelsea.JPEG"]}
        assert "cats/chelsea.JPEG" not in ids(search_form(url, query, k="3"))
    finally:
        assert requests.delete(f"{url}/blocklist/cats%2Fchelsea.JPEG", timeout=60).status_code == 200
    assert ids(search_form(url, query, k="3"))[0] == "cats/chelsea.JPEG"


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n", b"422"),
        (b"POST /search HTTP/1.1\r\nContent-Length: lots\r\n\r\n", b"400"),
        (b"POST /search HTTP/1.1\r\nContent-Length: -5\r\n\r\n", b"400"),
        (b"POST /search HTTP/1.1\r\nContent-Length: 100\r\n\r\nshort", b"400"),
        (b"POST /search HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", b"411"),
        (b"BREW /search HTTP/1.1\r\n\r\n", b"501"),
        (b"POST /search HTTP/1.1\r\nContent-Length: 99999999999\r\nExpect: 100-continue\r\n\r\n", b"413"),
    ],
    ids=["garbage", "no Content-Length", "Content-Length not a number", "negative Content-Length",
         "body shorter than declared", "chunked", "unknown method", "too large, refused before sending"],
)
def test_bad_http_is_answered_and_the_server_carries_on(server, url, request_bytes, status):
    answer = raw(server, request_bytes)
    assert status in answer.split(b"\r\n", 1)[0] or answer.startswith(b'{"error": {"status": ' + status)
    assert requests.get(f"{url}/health", timeout=60).status_code == 200


def test_requests_become_api_gateway_v2_events():
    event = http_event(
        "post",
        "/images/kitchen%2Flamp%201.jpg?a=1&a=2&b=",
        [("Content-Type", "image/jpeg"), ("X-Thing", "one"), ("x-thing", "two"), ("Cookie", "s=1; t=2")],
        b"\xff\xd8\xff",
        source_ip="10.0.0.7",
    )
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/images/kitchen%2Flamp%201.jpg", "percent-encoded, as API Gateway sends it"
    assert event["rawQueryString"] == "a=1&a=2&b="
    assert event["queryStringParameters"] == {"a": "1,2", "b": ""}
    assert event["headers"] == {"content-type": "image/jpeg", "x-thing": "one,two"}
    assert event["cookies"] == ["s=1", "t=2"]
    assert event["requestContext"]["http"] == {
        "method": "POST", "path": "/images/kitchen%2Flamp%201.jpg", "protocol": "HTTP/1.1",
        "sourceIp": "10.0.0.7", "userAgent": "",
    }
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"\xff\xd8\xff"
    text = http_event("POST", "/search", [("Content-Type", "application/json")], b'{"k": 1}')
    assert text["isBase64Encoded"] is False and text["body"] == '{"k": 1}'
    assert "body" not in http_event("GET", "/health", [], b"")


def test_head_answers_like_get_without_a_body(server):
    answer = raw(server, b"HEAD /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert int(dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])[b"Content-Length"]) > 0
    assert body == b""


@pytest.mark.parametrize("method", [b"TRACE", b"FOO"])
def test_unsupported_methods_get_a_json_501(server, method):
    answer = raw(server, method + b" / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 501 ")
    assert b"application/json" in head and b'"status": 501' in body


def test_no_version_banner(url):
    assert requests.get(f"{url}/health", timeout=60).headers["Server"] == "lookalike"


def test_query_strings_are_not_logged(gallery, capsys):
    service, source, _ = gallery
    server = make_server(create_app(service, source), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        requests.get(f"http://127.0.0.1:{server.server_port}/health?apikey=QUERYSECRET", timeout=60)
        requests.post(f"http://127.0.0.1:{server.server_port}/search?apikey=QUERYSECRET", timeout=60)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    logged = capsys.readouterr().err
    assert "GET /health -> 200" in logged and "POST /search -> 422" in logged
    assert "QUERYSECRET" not in logged


@pytest.fixture
def tiny_server():
    """A server over one route, with room for one connection at a time."""
    app = ThreadSafeResolver()

    @app.get("/ping")
    def ping() -> dict:
        return {"pong": True}

    server = make_server(app, "127.0.0.1", 0, quiet=True, max_connections=1)
    yield server
    server.server_close()


def serving(server) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


def test_a_connection_over_the_cap_gets_a_503_and_the_next_is_served(tiny_server):
    thread = serving(tiny_server)
    try:
        with socket.create_connection(("127.0.0.1", tiny_server.server_port), timeout=30) as holder:
            holder.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            assert holder.recv(65536).startswith(b"HTTP/1.1 200 "), "kept alive: it holds the only slot"
            with socket.create_connection(("127.0.0.1", tiny_server.server_port), timeout=30) as extra:
                refused = b""
                while chunk := extra.recv(65536):
                    refused += chunk
            assert refused.startswith(b"HTTP/1.1 503 ")
            assert b"Retry-After: 1" in refused and b'"status": 503' in refused
        answer = b""
        for _ in range(50):  # the holder's slot frees once its thread sees the close
            try:
                answer = raw(tiny_server, b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            except OSError:  # refused and closed before our request was sent: the slot is not free yet
                answer = b""
            if answer.startswith(b"HTTP/1.1 200 "):
                break
            time.sleep(0.05)
        assert answer.startswith(b"HTTP/1.1 200 ")
    finally:
        tiny_server.shutdown()
        thread.join(timeout=10)


def test_a_burst_of_connections_is_queued_not_dropped(tiny_server):
    """Before the server accepts any, 100 connects complete at once: a backlog of 5 would hold
    the rest back by a SYN retransmit (about a second)."""
    sockets = []
    try:
        for _ in range(100):
            sockets.append(socket.create_connection(("127.0.0.1", tiny_server.server_port), timeout=0.5))
    finally:
        for connection in sockets:
            connection.close()
    assert len(sockets) == 100


def multipart(boundary: bytes, *fields: tuple[bytes, bytes], newline: bytes = b"\r\n") -> bytes:
    body = b""
    for name, value in fields:
        body += b"--" + boundary + newline
        body += b'Content-Disposition: form-data; name="' + name + b'"' + newline + newline + value + newline
    return body + b"--" + boundary + b"--" + newline


def post_raw(url, body: bytes, content_type: str) -> requests.Response:
    return requests.post(f"{url}/search", data=body, headers={"Content-Type": content_type}, timeout=60)


@pytest.mark.parametrize(
    ("body", "content_type", "named"),
    [
        ('{"image_id": "lamp.jpg"}'.encode("utf-16"), "application/json; charset=utf-16", "charset=utf-16"),
        (b'{"image_id": "\xff.jpg"}', "application/json", "not UTF-8 text: byte 0xff at position 14"),
        (multipart(b"right", (b"k", b"3")), "multipart/form-data; boundary=wrong", "never contains the boundary"),
        (multipart(b"b", (b"image_id", b"x"), newline=b"\n"), "multipart/form-data; boundary=b", "CRLF"),
        (multipart(b"b", *[(b"f%d" % n, b"1") for n in range(50_000)]), "multipart/form-data; boundary=b",
         "50000 parts; the limit is 64"),
    ],
    ids=["UTF-16 JSON", "JSON not UTF-8", "wrong multipart boundary", "multipart LF line endings",
         "50,000 multipart fields"],
)
def test_an_unreadable_body_is_a_400_that_names_the_problem(url, body, content_type, named):
    response = post_raw(url, body, content_type)
    assert response.status_code == 400, response.text
    assert named in response.json()["error"]["message"]
    assert "codec" not in response.text


def test_many_unknown_fields_are_counted_not_each_echoed(url):
    fields = {f"f{n}": 1 for n in range(60)}
    response = requests.post(f"{url}/search", json={"image_id": "lamp.jpg", **fields}, timeout=60)
    assert response.status_code == 422
    message = response.json()["error"]["message"]
    assert message.count("unknown field") == 10 and message.endswith("and 50 more")


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ('"k": true', "k: a number, not true or false"),
        ('"box": [0, 0, true, 100]', "box.2: a number, not true or false"),
        ('"box": [0, 0, ' + "9" * 5000 + ", 100]", "box.2: Unable to parse input string as an integer, exceeded"),
    ],
    ids=["k true", "box with a boolean", "5,000-digit box value"],
)
def test_booleans_and_endless_integers_are_422(url, fields, named):
    body = '{"image_id": "%s", %s}' % (LAMP, fields)
    response = requests.post(f"{url}/search", data=body, headers={"Content-Type": "application/json"}, timeout=60)
    assert response.status_code == 422, response.text
    assert named in response.json()["error"]["message"]
    assert "set_int_max_str_digits" not in response.text


def test_line_wrapped_base64_is_read(url):
    encoded = base64.encodebytes(chelsea_copy()).decode()
    assert "\n" in encoded
    response = requests.post(f"{url}/search", json={"image": encoded, "k": 1}, timeout=60)
    assert ids(response) == ["cats/chelsea.JPEG"]
