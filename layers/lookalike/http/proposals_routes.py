"""`POST /proposals`: suggested fragments for a query image, the boxes the page offers to search.

The body names the image exactly as `POST /search` does (`image`, `image_id` or `upload_id`,
the same request types); the answer is the displayed image's size and up to five boxes, best
first, in its pixels (half-open), each one a valid `box` for `POST /search`. How the boxes are
found, and how often they are right, is in lookalike.proposals and docs/FRAGMENTS.md.
"""

import time
from typing import Annotated

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel, Field

from lookalike.http.query_image import QueryImage, query_image_bytes, query_image_errors, query_pixel_budget
from lookalike.proposals import MAX_PROPOSALS, Proposer
from lookalike.sources import ImageSource
from lookalike.stores.base import VectorStore
from lookalike.uploads import QueryUploadStore

logger = Logger()


class ProposalsRequest(QueryImage):
    """As JSON; a multipart form carries the same fields, `image` as a file part."""


class SuggestedFragment(BaseModel):
    box: list[int] = Field(
        min_length=4, max_length=4, description="[x0, y0, x1, y1]: pixels of the image as displayed, half-open"
    )
    score: float = Field(ge=0, le=1, description="the share of the image's activation inside the box")


class ProposalsResponse(BaseModel):
    width: int = Field(description="the image's width as displayed (after EXIF orientation), in pixels")
    height: int = Field(description="the image's height as displayed, in pixels")
    proposals: list[SuggestedFragment] = Field(max_length=MAX_PROPOSALS, description="best first")


def add_proposal_routes(
    app: APIGatewayHttpResolver,
    proposer: Proposer,
    store: VectorStore,
    source: ImageSource,
    uploads: QueryUploadStore | None = None,
) -> None:
    @app.post(
        "/proposals",
        summary="Suggested fragments of the query image: up to five object boxes, best first",
        responses={
            200: {"description": "The image's size and its boxes"},
            **query_image_errors(),
        },
    )
    def proposals(
        request: Annotated[ProposalsRequest, Body(description="JSON, or the same fields as multipart/form-data")],
    ) -> ProposalsResponse:
        started = time.perf_counter()
        found = proposer.propose(query_image_bytes(request, store, source, uploads), query_pixel_budget(request))
        took_ms = round((time.perf_counter() - started) * 1000, 1)
        logger.info("proposals", extra={"proposals": len(found.proposals), "took_ms": took_ms})
        return ProposalsResponse(
            width=found.width,
            height=found.height,
            proposals=[
                SuggestedFragment(box=[p.box.x0, p.box.y0, p.box.x1, p.box.y1], score=p.score)
                for p in found.proposals
            ],
        )
