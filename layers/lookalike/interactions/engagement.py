"""Online metrics: how users engage with the results, from the event log.

Definitions (a search is one (session, query id) with an impression; its outcome follows the
rules of lookalike.interactions.outcomes: a result is clicked at most once, at the position the
impression showed it):
- CTR (search-level, the usual "click-through rate of a search"): searches with at least one
  click / searches. 1 - CTR is the abandonment rate.
- Result CTR: clicked results / shown results (each shown result is one chance to be clicked).
- CTR at position p: clicked results at position p / results shown at position p. It falls
  with p both because lower results are less relevant and because fewer users look that far
  down (position bias): see lookalike.interactions.click_labels for separating the two.
- MRR (of clicks): mean over searches of 1 / (position of the highest clicked result), 0 for a
  search without clicks.
- Mean dwell: mean over clicked results with dwell information of the total time they stayed
  open, in seconds; dwell coverage is the fraction of clicked results that have it (a page
  closed without reporting leaves none).
Per day means the UTC day the search's impression was received; its clicks count for that
day even when they arrive after midnight. Clicks of searches without an impression have no
denominator: they are counted apart and in no rate. Every click counts here, accidental or
not: these metrics describe behaviour, the label rules decide what is evidence.
"""

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from lookalike.interactions.events import RecordedEvent
from lookalike.interactions.outcomes import OutcomeCounts, SearchOutcome, search_outcomes


@dataclass(frozen=True)
class EngagementStats:
    searches: int
    searches_clicked: int
    results_shown: int
    results_clicked: int
    ctr: float | None
    result_ctr: float | None
    mrr: float | None
    mean_dwell_s: float | None
    dwell_coverage: float | None
    ctr_by_position: dict[int, float]


@dataclass(frozen=True)
class EngagementReport:
    overall: EngagementStats
    by_day: dict[str, EngagementStats]
    clicks_without_impression: int
    ignored: OutcomeCounts

    def as_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        """Fixed-width text: one row per day and a total, then CTR by position."""
        header = (
            f"{'day':<10}  {'searches':>8}  {'CTR':>6}  {'resultCTR':>9}  {'clicks':>6}  {'MRR':>6}  "
            f"{'dwell s':>7}  {'w/ dwell':>8}"
        )
        rows = [header, "-" * len(header)]
        for day, stats in [*self.by_day.items(), ("all", self.overall)]:
            rows.append(
                f"{day:<10}  {stats.searches:>8}  {_rate(stats.ctr):>6}  {_rate(stats.result_ctr):>9}  "
                f"{stats.results_clicked:>6}  {_number(stats.mrr, 3):>6}  {_number(stats.mean_dwell_s, 1):>7}  "
                f"{_rate(stats.dwell_coverage):>8}"
            )
        rows += ["", f"{'position':<8}  {'CTR':>6}"]
        rows += [f"{position:<8}  {_rate(rate):>6}" for position, rate in self.overall.ctr_by_position.items()]
        if self.clicks_without_impression:
            rows += ["", f"clicks without an impression (in no rate): {self.clicks_without_impression}"]
        return "\n".join(rows)


@dataclass
class _Tally:
    searches: int = 0
    searches_clicked: int = 0
    reciprocal_ranks: float = 0.0
    dwell_ms: list[int] = field(default_factory=list)
    shown_at: dict[int, int] = field(default_factory=dict)
    clicked_at: dict[int, int] = field(default_factory=dict)

    def add(self, outcome: SearchOutcome) -> None:
        self.searches += 1
        if outcome.clicks:
            self.searches_clicked += 1
            self.reciprocal_ranks += 1 / min(outcome.clicks.values())
        for position in outcome.shown.values():
            self.shown_at[position] = self.shown_at.get(position, 0) + 1
        for position in outcome.clicks.values():
            self.clicked_at[position] = self.clicked_at.get(position, 0) + 1
        self.dwell_ms += outcome.dwell_ms.values()

    def stats(self) -> EngagementStats:
        shown, clicked = sum(self.shown_at.values()), sum(self.clicked_at.values())
        return EngagementStats(
            searches=self.searches,
            searches_clicked=self.searches_clicked,
            results_shown=shown,
            results_clicked=clicked,
            ctr=_ratio(self.searches_clicked, self.searches),
            result_ctr=_ratio(clicked, shown),
            mrr=_ratio(self.reciprocal_ranks, self.searches),
            mean_dwell_s=_ratio(sum(self.dwell_ms) / 1000, len(self.dwell_ms)),
            dwell_coverage=_ratio(len(self.dwell_ms), clicked),
            ctr_by_position={
                position: self.clicked_at.get(position, 0) / count for position, count in sorted(self.shown_at.items())
            },
        )


def engagement(records: Iterable[RecordedEvent]) -> EngagementReport:
    outcomes, ignored = search_outcomes(records)
    overall, days = _Tally(), {}
    clicks_without_impression = 0
    for outcome in outcomes:
        if not outcome.has_impression:
            clicks_without_impression += len(outcome.clicks)
            continue
        overall.add(outcome)
        days.setdefault(outcome.shown_at.date().isoformat(), _Tally()).add(outcome)
    return EngagementReport(
        overall=overall.stats(),
        by_day={day: tally.stats() for day, tally in sorted(days.items())},
        clicks_without_impression=clicks_without_impression,
        ignored=ignored,
    )


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _number(value: float | None, decimals: int) -> str:
    return "-" if value is None else f"{value:.{decimals}f}"
