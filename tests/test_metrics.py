"""The offline metrics: hand-computed lists, edge cases, and scikit-learn as an independent check."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, ndcg_score

from lab.metrics import (
    average_precision,
    dcg_at_k,
    hits_at_k,
    mean_average_precision,
    mean_reciprocal_rank,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    reciprocal_rank,
)

# Five results, best first: misses at ranks 1 and 3; the collection holds four relevant items
# (grades 3, 2, 2, 1), one of which (a 2) the list missed.
RANKED = [0, 2, 0, 3, 1]
RELEVANT_GRADES = [3, 2, 2, 1]
N_RELEVANT = len(RELEVANT_GRADES)


def test_hits_precision_and_recall_by_hand():
    assert hits_at_k(RANKED, np.arange(1, 7)).tolist() == [0, 1, 1, 2, 3, 3]
    assert precision_at_k(RANKED, 2) == 0.5
    assert precision_at_k(RANKED, 5) == pytest.approx(0.6)
    assert recall_at_k(RANKED, N_RELEVANT, 2) == 0.25
    assert recall_at_k(RANKED, N_RELEVANT, 5) == 0.75


def test_k_beyond_the_list_counts_missing_positions_as_not_relevant():
    assert precision_at_k(RANKED, 10) == pytest.approx(0.3)
    assert recall_at_k(RANKED, N_RELEVANT, 10) == 0.75
    assert precision_at_k(RANKED, np.array([5, 10])).tolist() == pytest.approx([0.6, 0.3])


def test_reciprocal_rank_and_average_precision_by_hand():
    assert reciprocal_rank(RANKED) == 0.5
    # Relevant at ranks 2, 4, 5: precisions 1/2, 2/4, 3/5; the missed item adds 0; divided by 4.
    assert average_precision(RANKED, N_RELEVANT) == pytest.approx((1 / 2 + 2 / 4 + 3 / 5) / 4)


def test_ndcg_uses_exponential_gains_and_log2_discounts():
    dcg = 3 / np.log2(3) + 7 / np.log2(5) + 1 / np.log2(6)
    ideal = 7 / np.log2(2) + 3 / np.log2(3) + 3 / np.log2(4) + 1 / np.log2(5)
    assert dcg_at_k(RANKED, 5) == pytest.approx(dcg)
    assert ndcg_at_k(RANKED, RELEVANT_GRADES, 5) == pytest.approx(dcg / ideal)
    assert ndcg_at_k(RANKED, RELEVANT_GRADES, 2) == pytest.approx((3 / np.log2(3)) / (7 + 3 / np.log2(3)))
    assert ndcg_at_k(RANKED, RELEVANT_GRADES, 1) == 0.0


def test_a_perfect_ranking_scores_one_everywhere():
    ranked = sorted(RELEVANT_GRADES, reverse=True) + [0, 0]
    assert reciprocal_rank(ranked) == 1.0
    assert average_precision(ranked, N_RELEVANT) == 1.0
    assert ndcg_at_k(ranked, RELEVANT_GRADES, 3) == pytest.approx(1.0)
    assert recall_at_k(ranked, N_RELEVANT, N_RELEVANT) == 1.0


def test_a_swap_of_grades_lowers_ndcg_but_not_binary_metrics():
    better, worse = [3, 1, 0], [1, 3, 0]
    assert ndcg_at_k(worse, [3, 1], 3) < ndcg_at_k(better, [3, 1], 3)
    assert average_precision(worse, 2) == average_precision(better, 2) == 1.0


def test_no_relevant_item_in_the_collection():
    ranked = [0, 0, 0]
    assert reciprocal_rank(ranked) == 0.0
    assert precision_at_k(ranked, 2) == 0.0
    assert np.isnan(recall_at_k(ranked, 0, 2))
    assert np.isnan(average_precision(ranked, 0))
    assert np.isnan(ndcg_at_k(ranked, [], 2))


def test_an_empty_list_finds_nothing():
    assert reciprocal_rank([]) == 0.0
    assert precision_at_k([], 3) == 0.0
    assert recall_at_k([], 2, 3) == 0.0
    assert average_precision([], 2) == 0.0
    assert ndcg_at_k([], [2, 1], 3) == 0.0


def test_means_over_queries():
    rankings = [[1, 0], [0, 1], [0, 0]]
    assert mean_reciprocal_rank(rankings) == pytest.approx((1 + 0.5 + 0) / 3)
    assert mean_average_precision(rankings, [1, 2, 1]) == pytest.approx((1 + 0.25 + 0) / 3)
    with pytest.raises(ValueError, match="one relevant count per ranking"):
        mean_average_precision(rankings, [1, 1])


@pytest.mark.parametrize(
    "call",
    [
        lambda: precision_at_k(RANKED, 0),
        lambda: precision_at_k(RANKED, 2.5),
        lambda: recall_at_k(RANKED, 2, 5),  # three relevant results listed, only two exist
        lambda: average_precision([0, -1], 1),
        lambda: ndcg_at_k(RANKED, [3, 0, 2], 5),
        lambda: reciprocal_rank([[1, 0]]),
    ],
)
def test_inconsistent_inputs_are_refused(call):
    with pytest.raises(ValueError):
        call()


@pytest.mark.parametrize("seed", range(40))
def test_full_rankings_agree_with_scikit_learn(seed):
    """Over a whole collection (every item ranked, no tied scores) our AP and nDCG are
    scikit-learn's; its nDCG takes linear gains, so it is given 2^grade - 1."""
    rng = np.random.default_rng(seed)
    size = int(rng.integers(5, 60))
    grades = rng.integers(0, 6, size) * (rng.random(size) < 0.4)
    grades[rng.integers(size)] = rng.integers(1, 6)
    scores = rng.random(size)
    ranked = grades[np.argsort(-scores)]
    relevant = grades[grades > 0]
    assert average_precision(ranked, len(relevant)) == pytest.approx(average_precision_score(grades > 0, scores))
    for k in (1, 3, 10, size):
        expected = ndcg_score([2.0**grades - 1], [scores], k=k)
        assert ndcg_at_k(ranked, relevant, k) == pytest.approx(expected), k
