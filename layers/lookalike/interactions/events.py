"""The engagement events a client reports, and the log protocol that keeps them.

Three kinds, linked by the `query_id` that `POST /search` returns:
- impression: the ranked list a search showed, each result with its 1-based position;
- click: one result opened, with the position it was shown at;
- dwell: how long a result stayed open, in milliseconds (one event per viewing).

Sessions are anonymous: `session_id` is a random token the client draws (crypto.randomUUID()
in a browser) and keeps for a browsing session. It links the events of one user's session and
lets evidence be counted across distinct sessions, nothing more. No personal data is taken or
kept: no name, e-mail, IP address or user agent; the session-id pattern refuses anything but
letters, digits, `-` and `_`, so an e-mail address or a name with spaces cannot be sent as one.

Appending is idempotent. Each event has a key: derived from the client's `event_id` (scoped by
session and query) when it sends one, else from the event's whole content. A retried POST therefore
stores nothing twice; clients should send an `event_id` so that two genuinely repeated actions
(the same result opened twice) stay two events. The server stamps `received_at`: client clocks
are not trusted for anything.
"""

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

# A result list is at most this long: the API's MAX_K. It also bounds an impression's size (a
# DynamoDB item holds 400 KB: 100 ids of 1 KB fit).
MAX_SHOWN = 100
# A single viewing longer than a day is a tab left open, not attention.
MAX_DWELL_MS = 24 * 60 * 60 * 1000
# Fixed-width UTC text: sorts as it reads, the same in SQLite and DynamoDB.
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

QueryId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$", description="the query_id POST /search returned")]
SessionId = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9_-]{16,128}$",
        description="a random token the client draws per session (e.g. crypto.randomUUID()); never personal data",
    ),
]
EventId = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="the client's id for this event, unique within its search: a retry sends the same one",
    ),
]
ImageId = Annotated[str, Field(min_length=1, max_length=1024, description="a gallery image id (its key)")]
Position = Annotated[int, Field(ge=1, le=MAX_SHOWN, description="1-based rank the result was shown at")]


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: EventId | None = None
    query_id: QueryId
    session_id: SessionId


class ShownResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    image_id: ImageId
    position: Position


class Impression(_Event):
    type: Literal["impression"] = "impression"
    results: list[ShownResult] = Field(max_length=MAX_SHOWN, description="what the search showed, best first")
    query_key: ImageId | None = Field(
        None, description="the query image's key under the gallery folder, when it has one (more like this)"
    )
    query_sha256: str | None = Field(
        None, pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the query image's bytes (an upload)"
    )

    @model_validator(mode="after")
    def _each_result_once(self) -> "Impression":
        if len({result.position for result in self.results}) != len(self.results):
            raise ValueError("two results share a position")
        if len({result.image_id for result in self.results}) != len(self.results):
            raise ValueError("an image is listed twice")
        return self


class Click(_Event):
    type: Literal["click"] = "click"
    image_id: ImageId
    position: Position


class Dwell(_Event):
    type: Literal["dwell"] = "dwell"
    image_id: ImageId
    dwell_ms: int = Field(ge=0, le=MAX_DWELL_MS, description="how long the result stayed open")


Event = Annotated[Impression | Click | Dwell, Field(discriminator="type")]
EVENT: TypeAdapter[Impression | Click | Dwell] = TypeAdapter(Event)


class RecordedEvent(BaseModel):
    """An event as a log keeps it: its idempotency key and when the server received it."""

    model_config = ConfigDict(frozen=True)

    key: str
    received_at: datetime
    event: Event


@dataclass(frozen=True)
class AppendResult:
    stored: int  # new events
    duplicates: int  # already in the log (a retried request), or repeated within the batch


def event_key(event: Event) -> str:
    """The idempotency key: the client's event id within its search, else the content itself."""
    if event.event_id is not None:
        material: list = ["id", event.session_id, event.query_id, event.event_id]
    else:
        material = ["content", event.model_dump(mode="json", exclude={"event_id"})]
    encoded = json.dumps(material, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:32]


def timestamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(TIMESTAMP_FORMAT)


def parse_timestamp(text: str) -> datetime:
    return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def record(events: Sequence[Event], received_at: datetime | None = None) -> list[RecordedEvent]:
    """The batch keyed and stamped, each key once (a repeat within the batch is a duplicate too)."""
    moment = received_at or utc_now()
    unique: dict[str, RecordedEvent] = {}
    for event in events:
        key = event_key(event)
        if key not in unique:
            unique[key] = RecordedEvent(key=key, received_at=moment, event=event)
    return list(unique.values())


class EventLog(Protocol):
    """An append-only, idempotent log of events, read back by time of receipt."""

    def append(self, events: Sequence[Event], received_at: datetime | None = None) -> AppendResult:
        """Store the events not stored yet; `received_at` defaults to now (tests pass a time)."""

    def events(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[RecordedEvent]:
        """The events received in [since, until), oldest first."""
