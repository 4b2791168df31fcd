"""The web page's routes on API Gateway v2 events: what is served, with which headers, and that
nothing but the page's own files can be reached. (The page itself: tests/test_web_e2e.py.)"""

import base64
import html
import json
import re

import pytest

from lookalike.http.page_routes import STATIC
from lookalike.http.search_routes import MAX_K
from lookalike.http.admission import MAX_REQUEST_BYTES
from lookalike.http.app import create_app
from lookalike.http.server import http_event
from lookalike.images import MIN_BOX_SIDE
from lookalike.search import SearchService
from lookalike.sources import FolderSource
from lookalike.stores.faiss import FaissStore


@pytest.fixture(scope="module")
def app(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("page")
    (root / "gallery").mkdir()
    return create_app(SearchService(embedder, FaissStore(root / "store")), FolderSource(root / "gallery"))


def get(app, target: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    result = app.resolve(http_event("GET", target, list(headers.items()), b""), None)
    body = result.get("body") or ""
    payload = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    return result["statusCode"], {name.lower(): value for name, value in result["headers"].items()}, payload


def test_the_page_carries_the_limits_the_api_enforces(app):
    status, headers, body = get(app, "/")
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src" not in headers["content-security-policy"]  # default-src 'self' covers scripts
    assert "default-src 'self'" in headers["content-security-policy"]
    limits = json.loads(html.unescape(re.search(rb'data-limits="([^"]*)"', body).group(1).decode()))
    assert limits == {"maxK": MAX_K, "maxRequestBytes": MAX_REQUEST_BYTES, "minBoxSide": MIN_BOX_SIDE}


def referenced_assets() -> set[str]:
    """Every file the page loads: from index.html, and the modules the scripts import."""
    names = set(re.findall(r'"static/([\w.-]+)"', STATIC.joinpath("index.html").read_text()))
    pending = [name for name in names if name.endswith(".js")]
    while pending:
        imported = set(re.findall(r'from "\./([\w.-]+)"', STATIC.joinpath(pending.pop()).read_text())) - names
        names |= imported
        pending += imported
    return names


@pytest.mark.parametrize(
    ("suffix", "content_type"),
    [(".js", "text/javascript; charset=utf-8"), (".css", "text/css; charset=utf-8"), (".svg", "image/svg+xml")],
)
def test_every_asset_the_page_loads_is_served_with_its_type(app, suffix, content_type):
    names = sorted(name for name in referenced_assets() if name.endswith(suffix))
    assert names, f"the page loads no {suffix} file"
    for name in names:
        status, headers, body = get(app, f"/static/{name}")
        assert status == 200, name
        assert headers["content-type"] == content_type
        assert headers["x-content-type-options"] == "nosniff"
        assert body == STATIC.joinpath(name).read_bytes()


def test_every_shipped_script_is_loaded_by_the_page():
    shipped = {entry.name for entry in STATIC.iterdir() if entry.name.endswith(".js")}
    assert shipped == {name for name in referenced_assets() if name.endswith(".js")}


@pytest.mark.parametrize("target", ["/", "/static/app.js", "/static/style.css"])
def test_an_unchanged_file_is_revalidated_with_a_304(app, target):
    status, headers, _ = get(app, target)
    assert headers["cache-control"] == "no-cache"
    etag = headers["etag"]
    assert get(app, target, **{"If-None-Match": etag})[:1] == (304,)
    assert get(app, target, **{"If-None-Match": f'W/{etag}, "other"'})[0] == 304
    assert get(app, target, **{"If-None-Match": '"something-else"'})[0] == 200


@pytest.mark.parametrize(
    "target",
    [
        "/static/missing.js",
        "/static/index.html",  # served at / only, with its limits filled in
        "/static/..%2Fpage_routes.py",
        "/static/%2e%2e%2froutes.py",
        "/static/../routes.py",
        "/static/",
        "/static/sub/app.js",
        "/index.html",
    ],
)
def test_nothing_but_the_page_files_is_served(app, target):
    status, headers, body = get(app, target)
    assert status == 404
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["status"] == 404


def test_the_page_routes_stay_out_of_the_api_description(app):
    status, _, body = get(app, "/openapi.json")
    assert status == 200
    paths = json.loads(body)["paths"]
    assert "/search" in paths
    assert not [path for path in paths if path == "/" or path.startswith("/static")]
