"""`POST /admin/backfill`: enqueue the gallery's existing objects for indexing, a slice per call.

API Gateway gives a request 30 seconds, far less than listing and enqueuing a large bucket takes,
so one call enqueues at most KEYS_PER_REQUEST keys after `start_after` and says where to go on:
the client calls again with `start_after` set to the returned `next` until `next` is null. The
backfill command (`python -m lookalike.aws.backfill`) does a whole bucket in one run instead.
Registered by the admin function only, which API Gateway puts behind IAM.
"""

from typing import Annotated

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel, ConfigDict, Field

from lookalike.aws.backfill import Backfill

logger = Logger(service="lookalike")

# About 200 SendMessageBatch calls: a few seconds, well inside API Gateway's 30.
KEYS_PER_REQUEST = 2000


class BackfillRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prefix: str = Field("", description="only keys starting with this")
    start_after: str | None = Field(None, description="the `next` of the previous call; none: from the start")


class BackfillResponse(BaseModel):
    enqueued: int
    next: str | None = Field(description="pass as start_after to continue; null once every key is enqueued")


def add_backfill_routes(app: APIGatewayHttpResolver, backfill: Backfill) -> None:
    @app.post("/admin/backfill", tags=["admin"], summary="Enqueue existing gallery objects for indexing, in slices")
    def run_backfill(request: Annotated[BackfillRequest, Body(description="JSON")]) -> BackfillResponse:
        report = backfill.run(request.prefix, start_after=request.start_after, limit=KEYS_PER_REQUEST)
        logger.info("backfill slice enqueued", extra={"enqueued": report.enqueued, "last_key": report.last_key})
        return BackfillResponse(enqueued=report.enqueued, next=None if report.done else report.last_key)
