"""Re-ranking: what happens to nearest-neighbour candidates before a person sees them.

The policies run in a fixed order on candidates the store already sorted by cosine:
drop the query's own image and blocked images, round scores so that float noise between batch
sizes cannot reorder results, sort by (score, id), then collapse near-duplicates by keeping the
best image of each group. The result is a pure function of its inputs, so one query always gives
one ranking.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lookalike.stores.base import Hit

# Two gallery images whose embeddings agree at or above this cosine are the same picture (a
# re-save, a resize). Measured by `python -m lab bench dedupe_threshold` (README, "Measured"): the
# closest distinct edit reached 0.989 (a desaturated copy) and re-saves reach 0.94-1.0, so the
# ranges overlap; the threshold sits above every edit, so no edit is ever lost, at the price of
# keeping the harsher re-saves (JPEG q50) as separate results.
DEDUPE_THRESHOLD = 0.992
SCORE_DECIMALS = 4


@dataclass(frozen=True)
class RankingPolicy:
    dedupe_threshold: float | None = DEDUPE_THRESHOLD
    score_decimals: int = SCORE_DECIMALS


def rerank(
    candidates: Sequence[Hit],
    *,
    k: int,
    exclude_ids: set[str],
    blocked: set[str],
    vectors: Mapping[str, np.ndarray] | None,
    policy: RankingPolicy,
) -> list[Hit]:
    """At most k hits, best first; `vectors` (unit gallery vectors by id) is needed to dedupe."""
    eligible = sorted(
        (
            Hit(hit.id, round(float(hit.score), policy.score_decimals))
            for hit in candidates
            if hit.id not in exclude_ids and hit.id not in blocked
        ),
        key=lambda hit: (-hit.score, hit.id),
    )
    if policy.dedupe_threshold is None:
        return eligible[:k]
    if vectors is None:
        raise ValueError("near-duplicate collapse needs the candidates' vectors")
    ranked: list[Hit] = []
    kept_vectors: np.ndarray | None = None  # (k, d), the first len(ranked) rows filled
    for hit in eligible:
        if len(ranked) == k:
            break
        vector = vectors[hit.id]
        if ranked and float(np.max(kept_vectors[: len(ranked)] @ vector)) >= policy.dedupe_threshold:
            continue
        if kept_vectors is None:
            kept_vectors = np.empty((k, len(vector)), dtype=np.float32)
        kept_vectors[len(ranked)] = vector
        ranked.append(hit)
    return ranked
