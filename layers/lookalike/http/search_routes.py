"""`POST /search`, `GET /images/{image_id}` and `GET /health`: the search itself, the gallery
images its results link to, and what a deployment serves."""

import io
import time
import uuid
from http import HTTPStatus
from typing import Annotated, Literal
from urllib.parse import quote, unquote

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from PIL import Image
from pydantic import BaseModel, Field

from lookalike import __version__
from lookalike.http.errors import errors_documented
from lookalike.http.query_image import (
    BoxField,
    Integer,
    QueryImage,
    TagFilter,
    check_gallery_image,
    gallery_image_bytes,
    query_image_bytes,
    query_image_errors,
    query_pixel_budget,
)
from lookalike.images import CropBox
from lookalike.search import Query, SearchService
from lookalike.sources import ImageSource, LinkedSource
from lookalike.uploads import QueryUploadStore

logger = Logger()
# Off outside Lambda and where the stack turns tracing off (POWERTOOLS_TRACE_DISABLED); in the
# search function each search is a subsegment of its invocation's trace.
tracer = Tracer()

MAX_K = 100
DEFAULT_K = 10


class SearchRequest(QueryImage):
    """As JSON; a multipart form carries the same fields, `image` as a file part."""

    box: BoxField | None = None
    k: Integer = Field(DEFAULT_K, ge=1, le=MAX_K, description="how many results at most")
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


def image_url(image_id: str) -> str:
    """Ids are relative paths (`kitchen/lamp 1.jpg`); the id is one path segment, so `/` is encoded too."""
    return "/images/" + quote(image_id, safe="")


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
    # The trace shows where the time went; the results themselves are the response's business.
    @tracer.capture_method(capture_response=False)
    def search(
        request: Annotated[SearchRequest, Body(description="JSON, or the same fields as multipart/form-data")],
    ) -> SearchResponse:
        started = time.perf_counter()
        box = CropBox.parse(request.box) if request.box is not None else None
        data = query_image_bytes(request, service.store, source, uploads)
        query = Query(data, box, full_decode_pixels=query_pixel_budget(request))
        hits = service.search_one(query, k=request.k, tags=request.tags, dedupe=request.dedupe)
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
            **errors_documented(HTTPStatus.NOT_FOUND),
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


def _mime_type(data: bytes) -> str:
    """From the bytes, never from the id's extension."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.get_format_mimetype() or "application/octet-stream"
    except (OSError, ValueError, Image.DecompressionBombError):
        return "application/octet-stream"
