"""The HTTP API, assembled once for powertools' event handler so that the search Lambda, the admin
Lambda and the local server (`lookalike.http.server`) run the very same routes on the very same
API Gateway events.

Each concept's routes live in a module of their own and are added here: a new route is one
module and one line below. Every app refuses oversized requests (`admission`), answers every
failure as a JSON `ErrorResponse` (`errors`) and describes itself at /openapi.json (`openapi`).
"""

from http import HTTPStatus

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from lookalike.http.admin_routes import GalleryBackfill, add_admin_routes
from lookalike.http.admission import MAX_REQUEST_BYTES, admit
from lookalike.http.errors import add_error_handlers
from lookalike.http.events_routes import add_event_routes
from lookalike.http.openapi import add_openapi_route
from lookalike.http.page_routes import add_page_routes
from lookalike.http.proposals_routes import add_proposal_routes
from lookalike.http.request_body import ReadableBodyValidation, parse_json
from lookalike.http.resolver import ThreadSafeResolver
from lookalike.http.search_routes import MAX_K, add_search_routes
from lookalike.http.uploads_routes import add_upload_routes
from lookalike.interactions.events import EventLog
from lookalike.proposals import Proposer
from lookalike.search import SearchService
from lookalike.sources import ImageSource
from lookalike.stores.base import VectorStore
from lookalike.uploads import QueryUploadStore


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
        add_proposal_routes(app, proposer, service.store, source, uploads)
    if events is not None:
        add_event_routes(app, events)
    if admin:
        add_admin_routes(app, service.store)
    add_page_routes(app, max_k=MAX_K, max_request_bytes=MAX_REQUEST_BYTES)
    add_openapi_route(app)
    return app


def create_admin_app(store: VectorStore, *, backfill: GalleryBackfill | None = None) -> APIGatewayHttpResolver:
    """The block-list routes alone, for the function API Gateway puts behind IAM: it needs no
    model. `backfill` (the cloud's index queue) adds POST /admin/backfill."""
    app = _new_app(store)
    add_admin_routes(app, store, backfill)
    add_openapi_route(app)
    return app


def _new_app(store: VectorStore) -> APIGatewayHttpResolver:
    app = ThreadSafeResolver(
        json_body_deserializer=parse_json,
        enable_validation=True,
        response_validation_error_http_code=HTTPStatus.INTERNAL_SERVER_ERROR,
    )

    def see_other_writers(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response:
        # The CLI's `block` or an indexer in another process commits to the same store.
        store.refresh()
        return next_middleware(app)

    # Runs first, before `admit`: a body it cannot read is refused with the reason.
    app._request_validation_middleware = ReadableBodyValidation()
    app.use(middlewares=[admit, see_other_writers])
    add_error_handlers(app)
    return app
