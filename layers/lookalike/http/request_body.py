"""Reading a request body before any route does, so that a body the client got wrong is named
as such (400) instead of surfacing as a codec error, or as a 500 from inside a route.

powertools' body parser assumes UTF-8 JSON and well-formed multipart: a UTF-16 body, a body that
is not UTF-8, a multipart body whose boundary never appears or whose lines end in LF alone would
reach the client as "'utf-8' codec can't decode byte 0xff" or as a missing field. Multipart parts
are capped too: every one is parsed and every unknown one reported, so their number bounds the
work and the size of the answer.
"""

import base64
import json
from email.message import Message
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import OpenAPIRequestValidationMiddleware
from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent

from lookalike.errors import LookalikeError

# A search or proposals form has at most a handful of fields; a file part is one of them.
MAX_MULTIPART_PARTS = 64


class UnreadableBodyError(LookalikeError):
    """The body cannot be read as the type its Content-Type names."""

    status = 400


def body_text(event: BaseProxyEvent) -> str:
    """The body as text: UTF-8, the only charset a JSON body may use (RFC 8259)."""
    charset = _content_type(event).get_param("charset")
    if isinstance(charset, str) and charset.lower().replace("-", "") != "utf8":
        raise UnreadableBodyError(f"the body is declared charset={charset}: send it as UTF-8")
    try:
        return event.decoded_body or ""
    except UnicodeDecodeError as error:
        raise UnreadableBodyError(
            f"the body is not UTF-8 text: byte {error.object[error.start]:#04x} at position {error.start}"
        ) from None


def parse_json(text: str) -> Any:
    """`json.loads`, except that an integer too long for Python to convert (over 4,300 digits)
    stays a string of digits: validation then refuses it as too large (422), where `json.loads`
    would fail with advice to raise the interpreter's limit."""
    return json.loads(text, parse_int=_integer)


def _integer(digits: str) -> int | str:
    try:
        return int(digits)
    except ValueError:
        return digits


def check_multipart(body: bytes, boundary: str) -> None:
    delimiter = b"--" + boundary.encode("latin-1")
    first = body.find(delimiter)
    if first < 0:
        raise UnreadableBodyError(f"the multipart body never contains the boundary {boundary!r} its Content-Type names")
    after = body[first + len(delimiter) : first + len(delimiter) + 2]
    if after[:1] == b"\n" or b"\r\n\r\n" not in body:
        raise UnreadableBodyError("multipart/form-data lines must end in CRLF (\\r\\n), not LF alone")
    parts = body.count(delimiter) - 1
    if parts > MAX_MULTIPART_PARTS:
        raise UnreadableBodyError(f"the multipart body has {parts} parts; the limit is {MAX_MULTIPART_PARTS}")


def check_body(event: BaseProxyEvent) -> None:
    """Refuse, with the reason, a body that powertools' parser would misread."""
    if not event.body:
        return
    content_type = _content_type(event)
    if content_type.get_content_type() == "multipart/form-data":
        boundary = content_type.get_param("boundary")
        if isinstance(boundary, str) and boundary:
            check_multipart(_body_bytes(event), boundary)
    elif content_type.get_content_type() in ("application/json", "text/plain"):
        body_text(event)


class ReadableBodyValidation(OpenAPIRequestValidationMiddleware):
    """powertools' request validation (always the first middleware), after `check_body`."""

    def handler(self, app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response:
        check_body(app.current_event)
        return super().handler(app, next_middleware)


def _body_bytes(event: BaseProxyEvent) -> bytes:
    body = event.body or ""
    return base64.b64decode(body) if event.is_base64_encoded else body.encode("utf-8")


def _content_type(event: BaseProxyEvent) -> Message:
    header = Message()
    header["content-type"] = event.headers.get("content-type", "") or "application/json"
    return header
