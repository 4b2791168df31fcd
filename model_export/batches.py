"""Which pairs make up each training step's batch.

A batch is `batch_size` (anchor, positive) pairs of rows and views:
- augmentation pairs (`aug_fraction` of the batch): an augmented view (1..views-1) of an image
  against the image itself (view 0), i.e. an edited or cropped query against its gallery entry;
- supervised pairs (the rest): click pairs (sampled uniformly; their evidence weight scales
  their loss, normalised to mean 1) with up to `hard_negatives` shown-but-not-clicked results,
  or class pairs (a random view of one image against another image of its class).
The positive side is always view 0, the image as the gallery indexed it.

Step n's batch depends only on (seed, n), not on what ran before it, so a run resumed from a
checkpoint draws exactly the batches an uninterrupted run would have drawn.
"""

from dataclasses import dataclass

import numpy as np

from model_export.data import TrainingSet

PAIR_SOURCES = ("clicks", "classes", "none")


@dataclass(frozen=True)
class Batch:
    anchor_rows: np.ndarray
    anchor_views: np.ndarray
    positive_rows: np.ndarray
    weights: np.ndarray
    negative_rows: np.ndarray  # (b, m), -1 where a row has fewer hard negatives


class PairSampler:
    def __init__(
        self,
        dataset: TrainingSet,
        source: str,
        batch_size: int,
        aug_fraction: float,
        views: int,
        hard_negatives: int,
        seed: int,
    ) -> None:
        if source not in PAIR_SOURCES:
            raise ValueError(f"pairs must come from one of {PAIR_SOURCES}, not {source!r}")
        if source == "clicks" and not dataset.has_clicks:
            raise ValueError("no click pairs: give the clicks and gallery channels, or train on classes")
        if source == "classes" and not dataset.has_classes:
            raise ValueError("no class with two images to pair: give the training tar more images")
        self.aug_count = batch_size if source == "none" else round(batch_size * aug_fraction)
        if self.aug_count and views < 2:
            raise ValueError("augmentation pairs need views >= 2 (view 0 is the image itself)")
        self.dataset = dataset
        self.source = source
        self.batch_size = batch_size
        self.views = views
        self.hard_negatives = hard_negatives if source == "clicks" else 0
        self.seed = seed
        labelled = np.flatnonzero(dataset.labels >= 0)
        self._class_members = {
            label: members
            for label in np.unique(dataset.labels[labelled])
            if len(members := labelled[dataset.labels[labelled] == label]) >= 2
        }
        self._pairable = np.concatenate(list(self._class_members.values())) if self._class_members else labelled
        self._mean_weight = dataset.pair_weights.mean() if dataset.has_clicks else 1.0

    def batch(self, step: int) -> Batch:
        rng = np.random.default_rng([self.seed, step])
        rows_total = len(self.dataset.images)
        supervised = self.batch_size - self.aug_count
        aug_rows = rng.choice(rows_total, self.aug_count, replace=self.aug_count > rows_total)
        aug_views = rng.integers(1, self.views, self.aug_count) if self.aug_count else np.zeros(0, dtype=np.int64)
        negatives = np.full((self.batch_size, self.hard_negatives), -1, dtype=np.int64)
        weights = np.ones(self.batch_size)
        if self.source == "clicks":
            chosen = rng.integers(0, len(self.dataset.pair_queries), supervised)
            anchors = self.dataset.pair_queries[chosen]
            positives = self.dataset.pair_positives[chosen]
            weights[:supervised] = self.dataset.pair_weights[chosen] / self._mean_weight
            width = min(self.hard_negatives, self.dataset.pair_negatives.shape[1])
            negatives[:supervised, :width] = self.dataset.pair_negatives[chosen, :width]
        elif self.source == "classes":
            anchors = rng.choice(self._pairable, supervised)
            positives = np.array([self._classmate(row, rng) for row in anchors], dtype=np.int64)
        else:
            anchors = positives = np.zeros(0, dtype=np.int64)
        return Batch(
            anchor_rows=np.concatenate([anchors, aug_rows]),
            anchor_views=np.concatenate([rng.integers(0, self.views, supervised), aug_views]),
            positive_rows=np.concatenate([positives, aug_rows]),
            weights=weights,
            negative_rows=negatives,
        )

    def _classmate(self, row: int, rng: np.random.Generator) -> int:
        members = self._class_members[self.dataset.labels[row]]
        position = int(np.searchsorted(members, row))
        return int(members[(position + rng.integers(1, len(members))) % len(members)])
