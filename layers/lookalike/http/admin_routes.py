"""The routes that change what everyone sees: the block list, and the backfill of a bucket that
held images before the deployment.

Locally they are open; in the cloud they must sit behind IAM: register them only in a function
(or on API Gateway route keys) that requires it (`create_admin_app`), and pass `admin=False` to
`create_app` everywhere else.

`POST /admin/backfill` enqueues the gallery's existing objects for indexing, a slice per call:
API Gateway gives a request 30 seconds, far less than listing and enqueuing a large bucket takes,
so one call enqueues at most KEYS_PER_REQUEST keys after `start_after` and says where to go on:
the client calls again with `start_after` set to the returned `next` until `next` is null. The
backfill command (`python -m lookalike.aws.backfill`) does a whole bucket in one run instead.
"""

from typing import Annotated, Protocol
from urllib.parse import unquote

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from pydantic import BaseModel, ConfigDict, Field

from lookalike.stores.base import StoreUnavailableError, VectorStore

logger = Logger()

ADMIN_TAG = "admin"
# About 200 SendMessageBatch calls: a few seconds, well inside API Gateway's 30.
KEYS_PER_REQUEST = 2000


class BackfillSlice(Protocol):
    """What one run enqueued (`lookalike.aws.backfill.BackfillReport`)."""

    @property
    def enqueued(self) -> int: ...

    @property
    def last_key(self) -> str | None:
        """The last key enqueued: where the next slice starts after."""

    @property
    def done(self) -> bool:
        """No key is left after last_key."""


class GalleryBackfill(Protocol):
    """What enqueues the bucket's objects (`lookalike.aws.backfill.Backfill`), named by what the
    route needs of it: the local server serves these routes too, without the cloud adapters."""

    def run(self, prefix: str = "", *, start_after: str | None = None, limit: int | None = None) -> BackfillSlice: ...


class BlockList(BaseModel):
    ids: list[str]


class BlockEntry(BaseModel):
    id: str
    blocked: bool


class BackfillRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prefix: str = Field("", description="only keys starting with this")
    start_after: str | None = Field(None, description="the `next` of the previous call; none: from the start")


class BackfillResponse(BaseModel):
    enqueued: int
    next: str | None = Field(description="pass as start_after to continue; null once every key is enqueued")


def add_admin_routes(app: APIGatewayHttpResolver, store: VectorStore, backfill: GalleryBackfill | None = None) -> None:
    """The block list, and with a `backfill` (the cloud's index queue) POST /admin/backfill."""
    _add_block_list_routes(app, store)
    if backfill is not None:
        _add_backfill_route(app, backfill)


def _add_block_list_routes(app: APIGatewayHttpResolver, store: VectorStore) -> None:
    """Blocked ids never appear in results nor under /images."""

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
    """A change the store could not commit (503) is undone in memory too: it answered a failure,
    so it must not take effect at the store's next commit."""
    was_blocked = image_id in store.blocked()
    (store.block if blocked else store.unblock)([image_id])
    try:
        store.persist()
    except StoreUnavailableError:
        if was_blocked != blocked:
            (store.block if was_blocked else store.unblock)([image_id])
        raise
    logger.info("block list changed", extra={"id": image_id, "blocked": blocked})
    return BlockEntry(id=image_id, blocked=blocked)


def _add_backfill_route(app: APIGatewayHttpResolver, backfill: GalleryBackfill) -> None:
    @app.post("/admin/backfill", tags=[ADMIN_TAG], summary="Enqueue existing gallery objects for indexing, in slices")
    def run_backfill(request: Annotated[BackfillRequest, Body(description="JSON")]) -> BackfillResponse:
        report = backfill.run(request.prefix, start_after=request.start_after, limit=KEYS_PER_REQUEST)
        logger.info("backfill slice enqueued", extra={"enqueued": report.enqueued, "last_key": report.last_key})
        return BackfillResponse(enqueued=report.enqueued, next=None if report.done else report.last_key)
