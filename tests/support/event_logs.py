"""Hand-made event logs for the learning-loop tests: events built in one line each."""

from datetime import datetime, timedelta, timezone

from lookalike.interactions.events import Click, Dwell, Impression, RecordedEvent, ShownResult, event_key

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)


def query_id(number: int) -> str:
    return f"{number:032x}"


def session(name: str) -> str:
    """A valid anonymous session id (at least 16 characters) from a short readable name."""
    return f"session-{name}-00000000"


def impression(query: int, who: str, shown: list[str], query_key: str | None = "q.jpg", **fields) -> Impression:
    results = [ShownResult(image_id=image_id, position=position) for position, image_id in enumerate(shown, start=1)]
    return Impression(query_id=query_id(query), session_id=session(who), results=results, query_key=query_key, **fields)


def click(query: int, who: str, image_id: str, position: int, **fields) -> Click:
    return Click(query_id=query_id(query), session_id=session(who), image_id=image_id, position=position, **fields)


def dwell(query: int, who: str, image_id: str, ms: int, **fields) -> Dwell:
    return Dwell(query_id=query_id(query), session_id=session(who), image_id=image_id, dwell_ms=ms, **fields)


def recorded(*events, at: datetime = T0, step: timedelta = timedelta(seconds=1)) -> list[RecordedEvent]:
    """The events as a log returns them, received one `step` apart from `at`."""
    return [RecordedEvent(key=event_key(event), received_at=at + n * step, event=event) for n, event in enumerate(events)]


def viewed(query: int, who: str, image_id: str, position: int, ms: int = 5000) -> list:
    """A click and its dwell: a result opened and looked at."""
    return [click(query, who, image_id, position), dwell(query, who, image_id, ms)]


def batch(number: int) -> list:
    """What one search's page sends: the impression, a click on the second result, its dwell."""
    return [
        impression(number, "a", ["x.jpg", "y.jpg"], event_id="i"),
        click(number, "a", "y.jpg", 2, event_id="c"),
        dwell(number, "a", "y.jpg", 4000, event_id="d"),
    ]
