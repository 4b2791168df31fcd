"""The web page: `GET /` and its assets under `GET /static/<name>`, served by the same routes as
the API so that the local server and the search Lambda show the same page, with no build step.

The page's limits (largest k, request size, smallest box) are written into `index.html` when it
is served, from the values the API enforces, so the page and the API cannot disagree (the app
assembler passes them in).
Assets are revalidated on every load (`no-cache` plus an ETag answered with 304): a deployment
that changes one file is seen at once, and an unchanged page costs one small request per file.
"""

import hashlib
import html
import json
from http import HTTPStatus
from importlib import resources

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

from lookalike.errors import NotFoundError
from lookalike.images import MIN_BOX_SIDE

STATIC = resources.files("lookalike.http").joinpath("static")
INDEX = "index.html"
LIMITS_PLACEHOLDER = "%LOOKALIKE_LIMITS%"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

# Scripts, styles and API calls come from this origin only. Images may also come from https
# anywhere: in the cloud GET /images/{id} redirects to a presigned S3 URL, and a query the
# person picks is shown from a blob: URL.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data: https:; object-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def add_page_routes(app: APIGatewayHttpResolver, *, max_k: int, max_request_bytes: int) -> None:
    limits = {"maxK": max_k, "maxRequestBytes": max_request_bytes, "minBoxSide": MIN_BOX_SIDE}
    limits_attribute = html.escape(json.dumps(limits), quote=True)
    asset_names = {
        entry.name
        for entry in STATIC.iterdir()
        if entry.is_file() and _suffix(entry.name) in CONTENT_TYPES and entry.name != INDEX
    }

    @app.get("/", include_in_schema=False)
    def page():
        text = STATIC.joinpath(INDEX).read_text(encoding="utf-8")
        body = text.replace(LIMITS_PLACEHOLDER, limits_attribute).encode()
        return _asset(app, body, CONTENT_TYPES[".html"], {"Content-Security-Policy": CONTENT_SECURITY_POLICY})

    @app.get("/static/<name>", include_in_schema=False)
    def asset(name: str):
        # Only the files listed when the routes were added: the name is a single path segment
        # (the route cannot match a `/`) and must be one of them, so nothing else is reachable.
        if name not in asset_names:
            raise NotFoundError(f"no page asset {name!r}")
        return _asset(app, STATIC.joinpath(name).read_bytes(), CONTENT_TYPES[_suffix(name)])


def _asset(
    app: APIGatewayHttpResolver, body: bytes, content_type: str, headers: dict[str, str] | None = None
) -> Response:
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {
        "ETag": etag,
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        **(headers or {}),
    }
    if etag in _if_none_match(app.current_event.headers.get("if-none-match", "")):
        return Response(status_code=HTTPStatus.NOT_MODIFIED, headers=headers, body=b"")
    return Response(status_code=HTTPStatus.OK, content_type=content_type, body=body, headers=headers)


def _if_none_match(value: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in value.split(",") if tag.strip()}


def _suffix(name: str) -> str:
    return name[name.rfind(".") :].lower() if "." in name else ""
