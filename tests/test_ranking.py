"""Re-ranking policies on hand-made candidates: exclusion, blocking, ties, near-duplicates."""

import numpy as np
import pytest

from lookalike.ranking import RankingPolicy, rerank
from lookalike.stores.base import Hit


def unit(*values: float) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


NO_DEDUPE = RankingPolicy(dedupe_threshold=None)


def test_query_image_and_blocked_ids_are_dropped():
    candidates = [Hit("query.jpg", 1.0), Hit("a", 0.9), Hit("blocked", 0.8), Hit("b", 0.7)]
    ranked = rerank(candidates, k=10, exclude_ids={"query.jpg"}, blocked={"blocked"}, vectors=None, policy=NO_DEDUPE)
    assert [hit.id for hit in ranked] == ["a", "b"]


def test_scores_are_rounded_and_ties_broken_by_id():
    candidates = [Hit("c", 0.812340001), Hit("a", 0.81234), Hit("b", 0.8123399), Hit("d", 0.9)]
    ranked = rerank(candidates, k=3, exclude_ids=set(), blocked=set(), vectors=None, policy=NO_DEDUPE)
    assert [hit.id for hit in ranked] == ["d", "a", "b"]
    assert ranked[1].score == 0.8123


def test_same_candidates_in_any_order_give_one_ranking():
    rng = np.random.default_rng(0)
    candidates = [Hit(f"id{i}", float(score)) for i, score in enumerate(rng.choice([0.5, 0.6, 0.7], size=30))]
    rankings = {
        tuple(rerank(list(rng.permutation(candidates)), k=10, exclude_ids=set(), blocked=set(), vectors=None, policy=NO_DEDUPE))
        for _ in range(5)
    }
    assert len(rankings) == 1


def test_near_duplicates_collapse_to_the_best_of_the_group():
    vectors = {
        "photo": unit(1, 0, 0),
        "photo-resaved": unit(1, 0.01, 0),  # cosine 0.99995 with photo
        "edit": unit(1, 0.5, 0),  # cosine 0.89: a distinct edit stays
        "other": unit(0, 1, 0),
    }
    candidates = [Hit("photo", 0.9), Hit("photo-resaved", 0.89), Hit("edit", 0.8), Hit("other", 0.3)]
    ranked = rerank(candidates, k=10, exclude_ids=set(), blocked=set(), vectors=vectors, policy=RankingPolicy(0.97))
    assert [hit.id for hit in ranked] == ["photo", "edit", "other"]
    without = rerank(candidates, k=10, exclude_ids=set(), blocked=set(), vectors=vectors, policy=NO_DEDUPE)
    assert [hit.id for hit in without] == ["photo", "photo-resaved", "edit", "other"]


def test_k_limits_after_filtering():
    vectors = {f"id{i}": unit(1, i, 0) for i in range(6)}
    candidates = [Hit(f"id{i}", 1 - i / 10) for i in range(6)]
    ranked = rerank(candidates, k=2, exclude_ids={"id0"}, blocked={"id1"}, vectors=vectors, policy=RankingPolicy(0.9999))
    assert [hit.id for hit in ranked] == ["id2", "id3"]


def test_dedupe_without_vectors_is_an_error():
    with pytest.raises(ValueError):
        rerank([Hit("a", 1.0)], k=1, exclude_ids=set(), blocked=set(), vectors=None, policy=RankingPolicy(0.97))
