"""What happened to each search, rebuilt from its events: the one view metrics and labels share.

A search is one (session_id, query_id). Its impression says what was shown where; its clicks
and dwell events say what was opened and for how long. The rules, applied the same for online
metrics and for training sets:
- Impressions of one search merge (a page may report the list again as it scrolls); an image
  keeps the best position it was shown at. The first impression dates the search and names
  its query.
- A result counts as clicked once, however many click events it got (a double click, a click
  repeated after coming back): the repeats are counted, not used.
- The position of a click is the one the impression showed it at; the client's own `position`
  is only a fallback kept for clicks whose search has no impression.
- A click on an image the impression did not show cannot be placed: counted, not used.
- Dwell is the sum of the dwell events of a clicked result (each event is one viewing); dwell
  on a result with no click is counted, not used.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from lookalike.interactions.events import Click, Dwell, Impression, RecordedEvent


@dataclass
class SearchOutcome:
    session_id: str
    query_id: str
    shown_at: datetime | None = None  # when the first impression arrived; None: no impression
    query_key: str | None = None
    shown: dict[str, int] = field(default_factory=dict)  # image id -> position (1-based)
    clicks: dict[str, int] = field(default_factory=dict)  # clicked image id -> position
    dwell_ms: dict[str, int] = field(default_factory=dict)  # clicked image id -> total dwell

    @property
    def has_impression(self) -> bool:
        return self.shown_at is not None


@dataclass
class OutcomeCounts:
    """Events the outcomes could not use, by reason."""

    repeated_clicks: int = 0
    clicks_not_shown: int = 0  # on an image the search's impression did not list
    dwell_without_click: int = 0


def search_outcomes(records: Iterable[RecordedEvent]) -> tuple[list[SearchOutcome], OutcomeCounts]:
    """One outcome per (session, query id), in the order of their first event."""
    outcomes: dict[tuple[str, str], SearchOutcome] = {}
    clicks: dict[tuple[str, str], list[Click]] = {}
    dwells: dict[tuple[str, str], list[Dwell]] = {}
    for recorded in records:
        event = recorded.event
        key = (event.session_id, event.query_id)
        outcome = outcomes.setdefault(key, SearchOutcome(event.session_id, event.query_id))
        if isinstance(event, Impression):
            if outcome.shown_at is None:
                outcome.shown_at, outcome.query_key = recorded.received_at, event.query_key
            for result in event.results:
                best = min(result.position, outcome.shown.get(result.image_id, result.position))
                outcome.shown[result.image_id] = best
        elif isinstance(event, Click):
            clicks.setdefault(key, []).append(event)
        else:
            dwells.setdefault(key, []).append(event)
    counts = OutcomeCounts()
    for key, outcome in outcomes.items():
        for click in clicks.get(key, []):
            if click.image_id in outcome.clicks:
                counts.repeated_clicks += 1
            elif outcome.has_impression and click.image_id not in outcome.shown:
                counts.clicks_not_shown += 1
            else:
                outcome.clicks[click.image_id] = outcome.shown.get(click.image_id, click.position)
        for dwell in dwells.get(key, []):
            if dwell.image_id in outcome.clicks:
                outcome.dwell_ms[dwell.image_id] = outcome.dwell_ms.get(dwell.image_id, 0) + dwell.dwell_ms
            else:
                counts.dwell_without_click += 1
    return list(outcomes.values()), counts
