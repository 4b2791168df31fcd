"""Training pairs from clicks ("dynamic labelling"): which gallery image users judged like a query.

A click is weak, noisy evidence. The rules below turn the event log into (query, positive)
pairs with hard negatives, each rule testable on its own (docs/LEARNING_LOOP.md explains them):

1. Searches are rebuilt by lookalike.interactions.outcomes: repeated click events on one result count
   once; clicks are placed at the position the impression showed.
2. Only searches whose impression names a `query_key` (the query image's key under the gallery
   folder) yield pairs: training needs the query image itself.
3. The query never labels itself: a click on the query's own key is dropped, and it is never a
   negative.
4. Accidental clicks: a click whose result stayed open less than `min_dwell_ms` (1 s) is
   dropped. A click with no dwell event (the page never reported one) is kept or dropped
   according to `missing_dwell` (kept by default: a lost beacon says nothing about the user).
5. Position bias: users click what they look at, and they look at the top. A click at position
   p is weighted by the inverse of its examination propensity theta_p (inverse propensity
   weighting, IPW), clipped: weight = 1 / max(theta_p, min_propensity). theta_p = (1/p)^eta
   (eta = 1) by default, or estimated from the log (`estimate_propensities`) where the same
   (query, image) was shown at neighbouring positions.
6. Distinct sessions: one session contributes to a pair once (its best-weighted click), however
   often it repeated the query. A pair's weight is the sum over its sessions; `sessions` counts
   them, and a pair is kept only with at least `min_sessions` (2) of them.
7. Negatives ("skip above"): results shown above a kept click and not clicked in that search
   (a user who clicked position 4 looked past 1-3 and chose not to open them). Any click, even
   an accidental one, keeps a result out of the negatives; so does being a kept positive of the
   same query. A pair's negatives are the union over its sessions, most-skipped first.

This module also owns the training set's file, `pairs.jsonl` (`write_pairs`, `read_pairs`):
`lookalike training-set` writes it and fine-tuning (model_export) reads it, so the format is
defined once.
"""

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from lookalike.interactions.events import RecordedEvent
from lookalike.interactions.outcomes import OutcomeCounts, SearchOutcome, search_outcomes

# The training set's file name in the folder `lookalike training-set --out` writes and
# training's clicks channel reads.
PAIRS_FILENAME = "pairs.jsonl"


@dataclass(frozen=True)
class LabelRules:
    min_dwell_ms: int = 1000
    missing_dwell: Literal["keep", "drop"] = "keep"
    min_sessions: int = 2
    eta: float = 1.0  # default examination curve theta_p = (1/p)^eta
    min_propensity: float = 0.1  # clips a weight at 10
    estimate_propensities: bool = False
    min_swap_clicks: int = 20  # clicks needed to estimate theta_{p+1}/theta_p from the log


@dataclass(frozen=True)
class TrainingPair:
    """Gallery keys of a query and of a result users judged like it, with the shown-but-not-clicked
    results as hard negatives; `weight` is how much evidence backs the pair. The defaults are what
    a hand-written pairs.jsonl line that leaves a field out means."""

    query: str
    positive: str
    negatives: tuple[str, ...] = ()
    weight: float = 1.0
    sessions: int = 1


def write_pairs(path: Path, pairs: Iterable[TrainingPair]) -> None:
    """One JSON object per line: query, positive, negatives, weight (6 decimals), sessions."""
    lines = [
        json.dumps(
            {
                "query": pair.query,
                "positive": pair.positive,
                "negatives": list(pair.negatives),
                "weight": round(pair.weight, 6),
                "sessions": pair.sessions,
            }
        )
        for pair in pairs
    ]
    Path(path).write_text("".join(line + "\n" for line in lines))


def read_pairs(path: Path) -> list[TrainingPair]:
    """The pairs of a pairs.jsonl, blank lines skipped; ValueError names the line that is not a pair."""
    pairs = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            pairs.append(
                TrainingPair(
                    record["query"],
                    record["positive"],
                    tuple(record.get("negatives", ())),
                    float(record.get("weight", 1.0)),
                    int(record.get("sessions", 1)),
                )
            )
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}:{number}: not a training pair ({error})") from None
    return pairs


@dataclass
class LabelReport:
    """How many searches and clicks each rule set aside, for the training-set summary."""

    searches: int = 0
    searches_without_query_key: int = 0
    clicks: int = 0
    clicks_on_query: int = 0
    accidental_clicks: int = 0
    clicks_without_dwell: int = 0  # kept or dropped per `missing_dwell`
    clicks_without_impression: int = 0
    candidate_pairs: int = 0
    pairs_below_min_sessions: int = 0
    pairs: int = 0
    propensities: dict[int, float] = field(default_factory=dict)
    ignored_events: OutcomeCounts = field(default_factory=OutcomeCounts)

    def summary(self) -> str:
        return ", ".join(f"{name} {value}" for name, value in asdict(self).items() if isinstance(value, int))


@dataclass
class _Evidence:
    weights: dict[str, float] = field(default_factory=dict)  # session -> its best click's weight
    skipped: dict[str, set[str]] = field(default_factory=dict)  # session -> negatives it skipped


def training_pairs(
    records: Iterable[RecordedEvent], rules: LabelRules = LabelRules()
) -> tuple[list[TrainingPair], LabelReport]:
    """Pairs sorted by query then positive; the report says what each rule removed."""
    outcomes, ignored = search_outcomes(records)
    report = LabelReport(ignored_events=ignored)
    searches = [outcome for outcome in outcomes if outcome.has_impression]
    report.clicks_without_impression = sum(len(outcome.clicks) for outcome in outcomes if not outcome.has_impression)
    report.searches = len(searches)
    theta = (
        estimate_propensities(searches, rules)
        if rules.estimate_propensities
        else default_propensities(max((len(o.shown) for o in searches), default=0), rules.eta)
    )
    report.propensities = theta
    evidence: dict[tuple[str, str], _Evidence] = {}
    for outcome in searches:
        if outcome.query_key is None:
            report.searches_without_query_key += 1
            continue
        for image_id, position in outcome.clicks.items():
            report.clicks += 1
            if not _is_evidence(outcome, image_id, rules, report):
                continue
            weight = 1 / max(theta.get(position, _curve(position, rules.eta)), rules.min_propensity)
            skipped = {
                shown_id
                for shown_id, shown_position in outcome.shown.items()
                if shown_position < position and shown_id not in outcome.clicks and shown_id != outcome.query_key
            }
            pair = evidence.setdefault((outcome.query_key, image_id), _Evidence())
            pair.weights[outcome.session_id] = max(weight, pair.weights.get(outcome.session_id, 0.0))
            pair.skipped.setdefault(outcome.session_id, set()).update(skipped)
    report.candidate_pairs = len(evidence)
    kept = {key: pair for key, pair in evidence.items() if len(pair.weights) >= rules.min_sessions}
    report.pairs_below_min_sessions = len(evidence) - len(kept)
    positives = {(query, positive) for query, positive in kept}
    pairs = [
        TrainingPair(
            query=query,
            positive=positive,
            negatives=_negatives(pair, query, positives),
            weight=sum(pair.weights.values()),
            sessions=len(pair.weights),
        )
        for (query, positive), pair in sorted(kept.items())
    ]
    report.pairs = len(pairs)
    return pairs, report


def _is_evidence(outcome: SearchOutcome, image_id: str, rules: LabelRules, report: LabelReport) -> bool:
    if image_id == outcome.query_key:
        report.clicks_on_query += 1
        return False
    dwell_ms = outcome.dwell_ms.get(image_id)
    if dwell_ms is None:
        report.clicks_without_dwell += 1
        return rules.missing_dwell == "keep"
    if dwell_ms < rules.min_dwell_ms:
        report.accidental_clicks += 1
        return False
    return True


def _negatives(pair: _Evidence, query: str, positives: set[tuple[str, str]]) -> tuple[str, ...]:
    times_skipped: dict[str, int] = {}
    for skipped in pair.skipped.values():
        for image_id in skipped:
            times_skipped[image_id] = times_skipped.get(image_id, 0) + 1
    eligible = [image_id for image_id in times_skipped if (query, image_id) not in positives]
    return tuple(sorted(eligible, key=lambda image_id: (-times_skipped[image_id], image_id)))


def _curve(position: int, eta: float) -> float:
    return (1 / position) ** eta


def default_propensities(max_position: int, eta: float = 1.0) -> dict[int, float]:
    """theta_p = (1/p)^eta: the examination curve of Joachims et al. (2017), eta = 1 by default."""
    return {position: _curve(position, eta) for position in range(1, max_position + 1)}


def estimate_propensities(searches: Iterable[SearchOutcome], rules: LabelRules = LabelRules()) -> dict[int, float]:
    """theta_p from the log by intervention harvesting (Agarwal et al., 2019), adjacent positions.

    Under the position-based model P(click | q, d, p) = theta_p * relevance(q, d), so when one
    (query, image) was shown at both p and p+1 (the gallery changed, a model was swapped), the
    ratio of its click rates there is theta_{p+1} / theta_p whatever its relevance. Pooled over
    such (query, image) with weights n_p n_{p+1} / (n_p + n_{p+1}); a ratio backed by fewer than
    `min_swap_clicks` clicks falls back to the default curve's. theta_1 = 1; later positions
    chain the ratios, clipped to [min_propensity, 1].
    """
    shown: dict[tuple[str, str, int], int] = {}
    clicked: dict[tuple[str, str, int], int] = {}
    max_position = 0
    for outcome in searches:
        if outcome.query_key is None:
            continue
        for image_id, position in outcome.shown.items():
            key = (outcome.query_key, image_id, position)
            shown[key] = shown.get(key, 0) + 1
            clicked[key] = clicked.get(key, 0) + (image_id in outcome.clicks)
            max_position = max(max_position, position)
    chained = {1: 1.0} if max_position else {}
    for position in range(1, max_position):
        above = below = 0.0
        clicks = 0
        for (query, image_id, at), n_above in shown.items():
            n_below = shown.get((query, image_id, position + 1), 0)
            if at != position or not n_below:
                continue
            weight = n_above * n_below / (n_above + n_below)
            c_above, c_below = clicked[(query, image_id, position)], clicked[(query, image_id, position + 1)]
            above += weight * c_above / n_above
            below += weight * c_below / n_below
            clicks += c_above + c_below
        if clicks >= rules.min_swap_clicks and above > 0:
            ratio = below / above
        else:
            ratio = _curve(position + 1, rules.eta) / _curve(position, rules.eta)
        chained[position + 1] = chained[position] * ratio
    return {position: min(1.0, max(rules.min_propensity, value)) for position, value in chained.items()}
