"""Offline retrieval metrics over ranked lists of graded results: written once, used everywhere.

A ranked list is given as `ranked`: the relevance grades of the returned results, best first
(0 = not relevant; benchmarks grade 1..5). Precision, recall, reciprocal rank and average
precision count a result as relevant when its grade is above 0; nDCG weighs it by its grade.
What the list missed is known from the collection: `n_relevant` (how many relevant items exist,
retrieved or not) and `relevant_grades` (their grades), so a relevant item the list lacks costs
recall, AP and nDCG.

Definitions (rank i counts from 1; g_i is the grade at rank i; n the length of the list):
- P@k = |relevant in the top k| / k. Past the end of the list positions count as not relevant,
  so P@k still divides by k when k > n.
- R@k = |relevant in the top k| / n_relevant.
- RR = 1 / (rank of the first relevant result), 0 when the list holds none; MRR is its mean.
- AP = (1 / n_relevant) * sum of P@i over the ranks i that hold a relevant result; mAP is its
  mean. Relevant items outside the list add 0: AP of a truncated list is a lower bound of the
  full ranking's.
- nDCG@k = DCG@k / IDCG@k with DCG@k = sum_{i=1}^{min(k, n)} (2^{g_i} - 1) / log2(i + 1):
  exponential gains, so a grade-5 result outweighs a grade-2 one 31 to 3. IDCG@k is the DCG@k
  of the ideal list: all of `relevant_grades`, highest first.
A query with no relevant item in the collection has no recall, AP or nDCG (NaN here): there is
nothing to find, so the benchmarks never issue one.
"""

from collections.abc import Sequence

import numpy as np

Grades = Sequence[int] | np.ndarray


def _grades(ranked: Grades) -> np.ndarray:
    grades = np.asarray(ranked)
    if grades.ndim != 1:
        raise ValueError(f"a ranked list is one row of grades, got shape {grades.shape}")
    if len(grades) and (grades.min() < 0 or not np.issubdtype(grades.dtype, np.integer)):
        raise ValueError("grades are non-negative integers")
    return grades


def _ks(k: int | np.ndarray) -> np.ndarray:
    ks = np.asarray(k)
    if not np.issubdtype(ks.dtype, np.integer) or (ks < 1).any():
        raise ValueError(f"k must be a positive integer (or an array of them), got {k!r}")
    return ks


def hits_at_k(ranked: Grades, k: int | np.ndarray) -> np.ndarray:
    """How many relevant results the top k hold; `k` may be an array (one count per k)."""
    cumulative = np.concatenate([[0], np.cumsum(_grades(ranked) > 0)])
    return cumulative[np.minimum(_ks(k), len(cumulative) - 1)]


def precision_at_k(ranked: Grades, k: int | np.ndarray) -> np.ndarray:
    return hits_at_k(ranked, k) / _ks(k)


def recall_at_k(ranked: Grades, n_relevant: int, k: int | np.ndarray) -> np.ndarray:
    _check_count(ranked, n_relevant)
    hits = hits_at_k(ranked, k)
    return hits / n_relevant if n_relevant else np.full(np.shape(hits), np.nan)


def reciprocal_rank(ranked: Grades) -> float:
    (relevant_ranks,) = np.nonzero(_grades(ranked) > 0)
    return 1.0 / (relevant_ranks[0] + 1) if len(relevant_ranks) else 0.0


def average_precision(ranked: Grades, n_relevant: int) -> float:
    _check_count(ranked, n_relevant)
    if not n_relevant:
        return float("nan")
    relevant = _grades(ranked) > 0
    precisions = np.cumsum(relevant) / np.arange(1, len(relevant) + 1)
    return float(precisions[relevant].sum() / n_relevant)


def dcg_at_k(ranked: Grades, k: int) -> float:
    top = _grades(ranked)[: int(_ks(k))].astype(np.float64)
    return float(((2.0**top - 1.0) / np.log2(np.arange(2, len(top) + 2))).sum())


def ndcg_at_k(ranked: Grades, relevant_grades: Grades, k: int) -> float:
    ideal = np.sort(_grades(relevant_grades))[::-1]
    if (ideal <= 0).any():
        raise ValueError("relevant_grades holds the grades (> 0) of the relevant items only")
    _check_count(ranked, len(ideal))
    if not len(ideal):
        return float("nan")
    return dcg_at_k(ranked, k) / dcg_at_k(ideal, k)


def mean_reciprocal_rank(rankings: Sequence[Grades]) -> float:
    return float(np.mean([reciprocal_rank(ranked) for ranked in rankings]))


def mean_average_precision(rankings: Sequence[Grades], n_relevant: Sequence[int]) -> float:
    if len(rankings) != len(n_relevant):
        raise ValueError(f"one relevant count per ranking: {len(rankings)} rankings, {len(n_relevant)} counts")
    return float(np.mean([average_precision(ranked, count) for ranked, count in zip(rankings, n_relevant)]))


def _check_count(ranked: Grades, n_relevant: int) -> None:
    """A list cannot hold more relevant results than the collection has: that is a judging bug."""
    found = int(hits_at_k(ranked, max(len(ranked), 1)))
    if n_relevant < 0 or found > n_relevant:
        raise ValueError(f"the list holds {found} relevant results but the collection only {n_relevant}")
