"""The HTTP API, written once for powertools' event handler so that the search Lambda and the local
server (`lookalike.http.server`) run the very same routes on the very same API Gateway events.

Every failure is a JSON `ErrorResponse` whose status says whose fault it is: 400 a body that does
not parse, 404 no such image or route, 413 too large, 415 not an image, 422 a bad box or parameter.
A 500 means a bug of ours: its message is generic and its traceback goes to the log.
"""

import base64
import binascii
import io
import json
import time
import uuid
from http import HTTPStatus
from typing import Annotated, Any, Literal, Protocol, runtime_checkable
from urllib.parse import quote, unquote

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as NoRouteError
from aws_lambda_powertools.event_handler.exceptions import ServiceError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
    ResponseValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, UploadFile
from PIL import Image
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from lookalike import __version__
from lookalike.errors import ImageTooLargeError, InvalidParameterError, LookalikeError, NotFoundError
from lookalike.interactions.events import EventLog
from lookalike.http.events_routes import add_event_routes
from lookalike.http.page_routes import add_page_routes
from lookalike.http.uploads_routes import QueryUploadStore, add_upload_routes
from lookalike.images import CropBox
from lookalike.proposals import Proposer
from lookalike.search import Query, SearchService
from lookalike.sources import ImageSource
from lookalike.stores.base import VectorStore

logger = Logger(service="lookalike")

# API Gateway refuses requests over 10 MB before they reach the Lambda; the local server and the
# routes refuse them too, so a request fails the same way everywhere. (A synchronous Lambda
# invocation is further capped at 6 MB, base64 overhead included.)
MAX_REQUEST_BYTES = 10 * 1024 * 1024
MAX_K = 100
DEFAULT_K = 10
ADMIN_TAG = "admin"

# Set by the last middleware before a route runs: an exception raised before it comes from
# powertools reading the client's bytes (a bad body), one raised after it from our own code.
_ADMITTED = "lookalike_request_admitted"


def _decode_image(value: Any) -> Any:
    """A multipart file part, or base64 (optionally a `data:` URL) in JSON and plain form fields."""
    if isinstance(value, UploadFile):
        value = value.content
    elif isinstance(value, str):
        encoded = value.split(",", 1)[1] if value.startswith("data:") else value
        try:
            value = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("image is not valid base64") from None
    elif isinstance(value, list):
        raise ValueError("send exactly one image")
    if isinstance(value, bytes) and not value:
        raise ValueError("image is empty")
    return value


def _split_box(value: Any) -> Any:
    """Form fields arrive as text: "x0,y0,x1,y1" or "[x0, y0, x1, y1]"."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    return json.loads(text) if text.startswith("[") else [part.strip() for part in text.split(",")]


def _parse_object(value: Any) -> Any:
    """Form fields arrive as text: a JSON object."""
    return json.loads(value) if isinstance(value, str) else value


ImageBytes = Annotated[
    bytes,
    BeforeValidator(_decode_image),
    WithJsonSchema({"type": "string", "contentEncoding": "base64", "description": "the query image, base64"}),
]
BoxField = Annotated[
    list[int],
    BeforeValidator(_split_box),
    Field(min_length=4, max_length=4, description="[x0, y0, x1, y1]: pixels of the image as displayed, half-open"),
]
TagFilter = Annotated[
    dict[str, str], BeforeValidator(_parse_object), Field(description="only images with all of these tags")
]


class QueryImage(BaseModel):
    """Which image a request is about: its bytes, a gallery image by id ("more like this"), or an
    upload (an image too large for a request, uploaded to storage first: POST /uploads)."""

    model_config = ConfigDict(extra="forbid")

    image: ImageBytes | None = None
    image_id: str | None = Field(None, min_length=1, description="a gallery image's id: more like this")
    upload_id: str | None = Field(None, min_length=1, description="an upload's id, from POST /uploads")

    @model_validator(mode="before")
    @classmethod
    def _one_value_per_field(cls, data: Any) -> Any:
        """A url-encoded form gives every field as the list of its values."""
        if not isinstance(data, dict):
            return data
        return {
            name: value[0] if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str) else value
            for name, value in data.items()
        }

    @model_validator(mode="after")
    def _exactly_one_image(self) -> "QueryImage":
        given = [name for name in QUERY_IMAGE_FIELDS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"send exactly one of {', '.join(QUERY_IMAGE_FIELDS)}")
        return self


QUERY_IMAGE_FIELDS = ("image", "image_id", "upload_id")


class SearchRequest(QueryImage):
    """As JSON; a multipart form carries the same fields, `image` as a file part."""

    box: BoxField | None = None
    k: int = Field(DEFAULT_K, ge=1, le=MAX_K, description="how many results at most")
    tags: TagFilter | None = None
    dedupe: bool = Field(True, description="collapse near-duplicate gallery images into their best")


class SearchHit(BaseModel):
    id: str
    score: float = Field(description="cosine similarity, higher is more alike")
    url: str = Field(description="where GET /images/{image_id} serves the image")


class SearchResponse(BaseModel):
    query_id: str = Field(description="names this search in the events (POST /events) reporting what it showed")
    results: list[SearchHit]
    k: int
    took_ms: float


class ModelDescription(BaseModel):
    name: str
    version: str


class HealthResponse(BaseModel):
    status: Literal["ok"]
    gallery: int = Field(description="images in the store")
    blocked: int
    model: ModelDescription
    version: str


class BlockList(BaseModel):
    ids: list[str]


class BlockEntry(BaseModel):
    id: str
    blocked: bool


class ErrorDetail(BaseModel):
    status: int
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


def error_document(status: int, message: str) -> dict:
    return ErrorResponse(error=ErrorDetail(status=status, message=message)).model_dump()


def _error(status: int, message: str) -> Response:
    status = int(status)
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=error_document(status, message)
    )


def _errors_documented(*statuses: HTTPStatus) -> dict[int, dict]:
    return {
        status.value: {"description": status.phrase, "content": {"application/json": {"model": ErrorResponse}}}
        for status in statuses
    }


def query_image_errors() -> dict[int, dict]:
    """What a route that reads a `QueryImage` may answer besides success."""
    return _errors_documented(
        HTTPStatus.BAD_REQUEST,
        HTTPStatus.NOT_FOUND,
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        HTTPStatus.UNPROCESSABLE_ENTITY,
    )


def image_url(image_id: str) -> str:
    """Ids are relative paths (`kitchen/lamp 1.jpg`); the id is one path segment, so `/` is encoded too."""
    return "/images/" + quote(image_id, safe="")


def create_app(
    service: SearchService,
    source: ImageSource,
    *,
    admin: bool = True,
    uploads: QueryUploadStore | None = None,
    proposer: Proposer | None = None,
    events: EventLog | None = None,
) -> APIGatewayHttpResolver:
    """The whole API over one search service and the source of its gallery's bytes.

    `admin=False` leaves out the block-list routes, for a deployment that serves them from a
    separate function behind IAM (`create_admin_app`). `uploads` (the cloud's query bucket) adds
    POST /uploads and lets a query name an `upload_id`. `proposer` adds POST /proposals.
    `events` (the event log) adds POST /events.
    """
    app = _new_app(service.store)
    add_search_routes(app, service, source, uploads)
    if uploads is not None:
        add_upload_routes(app, uploads)
    if proposer is not None:
        from lookalike.http.proposals_routes import add_proposal_routes  # it builds on this module's types

        add_proposal_routes(app, proposer, service.store, source, uploads)
    if events is not None:
        add_event_routes(app, events)
    if admin:
        add_admin_routes(app, service.store)
    add_page_routes(app, max_k=MAX_K, max_request_bytes=MAX_REQUEST_BYTES)
    _add_openapi_route(app)
    return app


def create_admin_app(store: VectorStore) -> APIGatewayHttpResolver:
    """The block-list routes alone, for the function API Gateway puts behind IAM: it needs no model."""
    app = _new_app(store)
    add_admin_routes(app, store)
    _add_openapi_route(app)
    return app


def _new_app(store: VectorStore) -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(
        enable_validation=True, response_validation_error_http_code=HTTPStatus.INTERNAL_SERVER_ERROR
    )

    def see_other_writers(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response:
        # The CLI's `block` or an indexer in another process commits to the same store.
        store.refresh()
        return next_middleware(app)

    app.use(middlewares=[_admit, see_other_writers])
    _add_error_handlers(app)
    return app


def _admit(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response:
    event = app.current_event
    body = event.body or ""
    size = len(body) * 3 // 4 if event.is_base64_encoded else len(body.encode())
    if size > MAX_REQUEST_BYTES:
        raise ImageTooLargeError(f"the request is {size} bytes; the limit is {MAX_REQUEST_BYTES}")
    app.append_context(**{_ADMITTED: True})
    return next_middleware(app)


def add_search_routes(
    app: APIGatewayHttpResolver, service: SearchService, source: ImageSource, uploads: QueryUploadStore | None = None
) -> None:
    @app.post(
        "/search",
        summary="Images that look like the query image (or the box inside it), best first",
        responses={
            200: {"description": "Ranked results"},
            **query_image_errors(),
        },
    )
    def search(
        request: Annotated[SearchRequest, Body(description="JSON, or the same fields as multipart/form-data")],
    ) -> SearchResponse:
        started = time.perf_counter()
        box = CropBox.parse(request.box) if request.box is not None else None
        data = query_image_bytes(request, service.store, source, uploads)
        hits = service.search_one(Query(data, box), k=request.k, tags=request.tags, dedupe=request.dedupe)
        took_ms = round((time.perf_counter() - started) * 1000, 1)
        logger.info("search", extra={"k": request.k, "results": len(hits), "box": request.box, "took_ms": took_ms})
        return SearchResponse(
            query_id=uuid.uuid4().hex,
            results=[SearchHit(id=hit.id, score=hit.score, url=image_url(hit.id)) for hit in hits],
            k=request.k,
            took_ms=took_ms,
        )

    @app.get(
        "/images/<image_id>",
        summary="A gallery image's bytes",
        responses={
            200: {
                "description": "The image",
                "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
            },
            302: {"description": "Where to fetch the image (cloud: a short-lived presigned URL)"},
            **_errors_documented(HTTPStatus.NOT_FOUND),
        },
    )
    def get_image(image_id: Annotated[str, Path(description="the image id, percent-encoded, `/` included")]):
        image_id = unquote(image_id)
        if isinstance(source, LinkedSource):
            check_gallery_image(image_id, service.store)
            # The link expires within minutes: a cache may keep the redirect for less.
            headers = {"Location": source.url(image_id), "Cache-Control": "private, max-age=60"}
            return Response(status_code=HTTPStatus.FOUND, body="", headers=headers)
        data = gallery_image_bytes(image_id, service.store, source)
        return Response(
            status_code=HTTPStatus.OK,
            content_type=_mime_type(data),
            body=data,
            headers={"X-Content-Type-Options": "nosniff"},
        )

    @app.get("/health", summary="Liveness, gallery size and model")
    def health() -> HealthResponse:
        info = service.embedder.info
        return HealthResponse(
            status="ok",
            gallery=service.store.count(),
            blocked=len(service.store.blocked()),
            model=ModelDescription(name=info.name, version=info.version),
            version=__version__,
        )


@runtime_checkable
class LinkedSource(Protocol):
    """A source whose images a client can fetch itself (S3: a short-lived presigned GET)."""

    def url(self, key: str) -> str: ...


def check_gallery_image(image_id: str, store: VectorStore) -> None:
    """Only what the store holds and does not block is served, never any other file of the
    source (a sidecar, a file that failed to index), whatever the id looks like."""
    (stored,) = store.get([image_id])
    if stored is None or image_id in store.blocked():
        raise NotFoundError(f"no gallery image {image_id!r}")


def gallery_image_bytes(image_id: str, store: VectorStore, source: ImageSource) -> bytes:
    check_gallery_image(image_id, store)
    return source.read(image_id)


def query_image_bytes(
    request: QueryImage, store: VectorStore, source: ImageSource, uploads: QueryUploadStore | None = None
) -> bytes:
    """The bytes of the image a request names, whichever way it names it."""
    if request.image_id is not None:
        return gallery_image_bytes(request.image_id, store, source)
    if request.upload_id is not None:
        if uploads is None:
            raise InvalidParameterError("this server takes no uploads: send the image itself")
        return uploads.read(request.upload_id)
    return request.image


def add_admin_routes(app: APIGatewayHttpResolver, store: VectorStore) -> None:
    """The block list: blocked ids never appear in results nor under /images.

    These routes change what everyone sees. Locally they are open; in the cloud they must sit
    behind IAM: register them only in a function (or on API Gateway route keys) that requires
    it, and pass `admin=False` to `create_app` everywhere else.
    """

    @app.get("/blocklist", tags=[ADMIN_TAG], summary="The blocked ids")
    def list_blocked() -> BlockList:
        return BlockList(ids=sorted(store.blocked()))

    @app.put("/blocklist/<image_id>", tags=[ADMIN_TAG], summary="Block an id (idempotent)")
    def block(image_id: Annotated[str, Path(description="the image id, percent-encoded")]) -> BlockEntry:
        return _set_blocked(store, unquote(image_id), blocked=True)

    @app.delete("/blocklist/<image_id>", tags=[ADMIN_TAG], summary="Unblock an id (idempotent)")
    def unblock(image_id: Annotated[str, Path(description="the image id, percent-encoded")]) -> BlockEntry:
        return _set_blocked(store, unquote(image_id), blocked=False)


def _set_blocked(store: VectorStore, image_id: str, *, blocked: bool) -> BlockEntry:
    (store.block if blocked else store.unblock)([image_id])
    store.persist()
    logger.info("block list changed", extra={"id": image_id, "blocked": blocked})
    return BlockEntry(id=image_id, blocked=blocked)


def _add_openapi_route(app: APIGatewayHttpResolver) -> None:
    @app.get("/openapi.json", include_in_schema=False)
    def openapi():
        return Response(
            status_code=HTTPStatus.OK, content_type=content_types.APPLICATION_JSON, body=openapi_document(app)
        )


def openapi_document(app: APIGatewayHttpResolver) -> dict:
    """powertools' OpenAPI document, plus the multipart form of POST /search it cannot express
    (it gives a route's body a single media type, while the body is parsed by its content type)."""
    document = json.loads(app.get_openapi_json_schema(title="Lookalike", version=__version__))
    search = document.get("paths", {}).get("/search", {}).get("post")
    if search is not None:
        form = SearchRequest.model_json_schema() | {"title": "SearchForm"}
        form["properties"]["image"] = {"type": "string", "format": "binary", "description": "the query image file"}
        form["properties"]["box"] = {"type": "string", "description": "x0,y0,x1,y1", "examples": ["40,30,360,280"]}
        form["properties"]["tags"] = {"type": "string", "description": "a JSON object of tags every result must have"}
        search["requestBody"]["content"]["multipart/form-data"] = {"schema": form}
    return document


def _mime_type(data: bytes) -> str:
    """From the bytes, never from the id's extension."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.get_format_mimetype() or "application/octet-stream"
    except (OSError, ValueError, Image.DecompressionBombError):
        return "application/octet-stream"


def _add_error_handlers(app: APIGatewayHttpResolver) -> None:
    @app.exception_handler(LookalikeError)
    def refused(error: LookalikeError) -> Response:
        return _error(error.status, str(error))

    @app.exception_handler(RequestValidationError)
    def invalid(error: RequestValidationError) -> Response:
        problems = error.errors()
        unreadable = [problem for problem in problems if problem["type"] in ("json_invalid", "multipart_invalid")]
        if unreadable:
            reason = unreadable[0].get("ctx", {}).get("error", "")
            kind = "JSON" if unreadable[0]["type"] == "json_invalid" else "multipart/form-data"
            return _error(HTTPStatus.BAD_REQUEST, f"the request body is not valid {kind}: {reason}".rstrip(": "))
        return _error(HTTPStatus.UNPROCESSABLE_ENTITY, "; ".join(_describe(problem) for problem in problems))

    @app.exception_handler(RequestUnsupportedContentType)
    def unsupported(error: RequestUnsupportedContentType) -> Response:
        content_type = app.current_event.headers.get("content-type", "")
        return _error(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            f"cannot read a {content_type} body: send JSON or multipart/form-data",
        )

    @app.not_found
    def no_route(error: NoRouteError) -> Response:
        event = app.current_event
        return _error(HTTPStatus.NOT_FOUND, f"no route for {event.http_method} {event.path}")

    @app.exception_handler(ServiceError)
    def service_error(error: ServiceError) -> Response:
        return _error(error.status_code, str(error.msg))

    @app.exception_handler(ResponseValidationError)
    def bad_response(error: ResponseValidationError) -> Response:
        logger.error("a route returned what its model refuses", extra={"errors": error.errors()})
        return _error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")

    @app.exception_handler(Exception)
    def unexpected(error: Exception) -> Response:
        if not app.context.get(_ADMITTED):
            logger.warning("unreadable request", exc_info=error)
            return _error(HTTPStatus.BAD_REQUEST, f"the request could not be read: {error}")
        logger.error("unhandled error", exc_info=error)
        return _error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")


def _describe(problem: dict) -> str:
    where = ".".join(str(part) for part in problem["loc"] if part != "body") or "body"
    message = problem["msg"].removeprefix("Value error, ")
    if problem["type"] == "extra_forbidden":
        message = "unknown field"
    return f"{where}: {message}"
