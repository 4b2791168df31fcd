"""`POST /events`: what users did with the results (impressions, clicks, dwell), for the event log.

A batch is a JSON array of events, or `{"events": [...]}`. It may come as `application/json` or
as `text/plain`: `navigator.sendBeacon(url, string)`, the way a page reports as it unloads, sends
a string body as text/plain and cannot choose otherwise. So the body is read here rather than
by powertools' validation, which only reads JSON and form bodies.

Each event is validated on its own: the valid ones are stored even when others are refused
(422, naming each refused event by its index), so that one bad event never costs the rest.
Appends are idempotent (see lookalike.interactions.events), so sending the corrected batch again, or
any retry, counts nothing twice.
"""

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from lookalike.interactions.events import EVENT, Event, EventLog

logger = Logger()

MAX_EVENTS_PER_REQUEST = 500
_JSON = TypeAdapter(Any)
_TEXT_TYPES = ("application/json", "text/plain")


class EventBatch(BaseModel):
    events: list[Event] = Field(max_length=MAX_EVENTS_PER_REQUEST)


class EventsAccepted(BaseModel):
    accepted: int = Field(description="valid events in the request")
    stored: int = Field(description="of which new to the log")
    duplicates: int = Field(description="of which already logged (a retry) or repeated in the request")


def _request_body_schema() -> dict:
    """powertools documents only bodies it parses itself: this one is given by hand. The `$id`
    makes the schema's own `$defs` references resolve within it (JSON Schema 2020-12)."""
    batch = EventBatch.model_json_schema()
    schema = {
        "$id": "urn:lookalike:event-batch",
        "$defs": batch.pop("$defs"),
        "oneOf": [batch["properties"]["events"], batch],
    }
    content = {"schema": schema}
    return {"required": True, "content": {"application/json": content, "text/plain": content}}


def add_event_routes(app: APIGatewayHttpResolver, log: EventLog) -> None:
    @app.post(
        "/events",
        summary="Report impressions, clicks and dwell times of search results (a JSON array or {\"events\": [...]})",
        responses={
            202: {
                "description": "Stored (or already stored)",
                "content": {"application/json": {"schema": EventsAccepted.model_json_schema()}},
            },
            400: {"description": "The body is not JSON"},
            413: {"description": f"More than {MAX_EVENTS_PER_REQUEST} events"},
            415: {"description": "Neither application/json nor text/plain"},
            422: {"description": "Some events are invalid; the valid ones were stored"},
        },
        openapi_extensions={"requestBody": _request_body_schema()},
    )
    def post_events():
        items = _read_batch(app)
        events, problems = [], []
        for index, item in enumerate(items):
            try:
                events.append(EVENT.validate_python(item))
            except ValidationError as error:
                where = ("body", "events", index)
                problems += [{**problem, "loc": (*where, *problem["loc"])} for problem in error.errors()]
        result = log.append(events)
        logger.info(
            "events",
            extra={
                "accepted": len(events),
                "stored": result.stored,
                "duplicates": result.duplicates,
                "refused": len(items) - len(events),
            },
        )
        if problems:
            raise RequestValidationError(problems)
        accepted = EventsAccepted(accepted=len(events), stored=result.stored, duplicates=result.duplicates)
        return Response(
            status_code=HTTPStatus.ACCEPTED, content_type=content_types.APPLICATION_JSON, body=accepted.model_dump()
        )


def _read_batch(app: APIGatewayHttpResolver) -> list:
    event = app.current_event
    content_type = event.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type and content_type not in _TEXT_TYPES:
        raise ServiceError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the events as JSON (application/json or text/plain)"
        )
    try:
        batch = _JSON.validate_json(event.decoded_body or "")
    except ValidationError as error:
        raise RequestValidationError([{**problem, "loc": ("body",)} for problem in error.errors()]) from None
    if isinstance(batch, dict) and set(batch) == {"events"}:
        batch = batch["events"]
    if not isinstance(batch, list):
        raise RequestValidationError(
            [{"type": "list_type", "loc": ("body",), "msg": 'send a JSON array of events, or {"events": [...]}'}]
        )
    if len(batch) > MAX_EVENTS_PER_REQUEST:
        raise ServiceError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"{len(batch)} events in one request; the limit is {MAX_EVENTS_PER_REQUEST}",
        )
    return batch
