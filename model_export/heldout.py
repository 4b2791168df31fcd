"""Quality on the held-out part of the training tar, where hyperparameters are chosen.

Three numbers, each from the probe views of images (model_export.augment.ProbeViews); for the
held-out split, training pushes the cached backbone features of those views through the head,
so a trial costs milliseconds, not a pass over the images:
- category_map: each image queries the others; same class is relevant (mAP);
- fragment_map: each image's annotated object box queries the whole images (itself included);
  same class is relevant (mAP);
- crop_top1: each image's half-area crop queries the whole images; the fraction whose source
  ranks first (instance matching, the copy-detection side a head must not lose).
Training scores the head on them every `eval_every` steps and keeps the best one (early
stopping): the step count that suits 200 click pairs overfits long before the one that suits
16,000 class pairs, and this choice is made on held-out training images, not on a test set.
The official figures come from `python -m lab evaluate` on the validation split, never from here.
"""

from collections.abc import Callable

import numpy as np

from lab import metrics


def mean_average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    """mAP of ranking each row's items by descending score (-inf: not a candidate), by
    lab.metrics; rows with nothing relevant to find are not queries."""
    rankings, counts = [], []
    for row_scores, row_relevant in zip(scores, relevant):
        candidates = np.flatnonzero(np.isfinite(row_scores))
        ranked = row_relevant[candidates[np.argsort(-row_scores[candidates], kind="stable")]].astype(np.int64)
        if ranked.any():
            rankings.append(ranked)
            counts.append(int(ranked.sum()))
    return metrics.mean_average_precision(rankings, counts)


def retrieval_metrics(whole: np.ndarray, box: np.ndarray, half: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Unit-length embeddings of each image, of its object box and of its half-area crop
    (model_export.augment.ProbeViews), and the images' class numbers."""
    same_class = labels[:, None] == labels[None, :]
    category = whole @ whole.T
    np.fill_diagonal(category, -np.inf)
    return {
        "category_map": mean_average_precision(category, same_class),
        "fragment_map": mean_average_precision(box @ whole.T, same_class),
        "crop_top1": float(((half @ whole.T).argmax(axis=1) == np.arange(len(labels))).mean()),
    }


class HeldOut:
    """Held-out images as base-model probe features (n, 3, d) and their classes."""

    def __init__(self, probes: np.ndarray, classes: list[str]) -> None:
        self.probes = probes
        self.labels = np.unique(classes, return_inverse=True)[1]

    def metrics(self, encode: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, float]:
        """Through `encode` ((m, d) base features -> unit-length embeddings); None: the backbone's own."""
        n, views, dim = self.probes.shape
        flat = self.probes.reshape(n * views, dim)
        embedded = (flat if encode is None else encode(flat)).reshape(n, views, -1)
        return retrieval_metrics(*embedded.transpose(1, 0, 2), self.labels)

    def score(self, encode: Callable[[np.ndarray], np.ndarray] | None = None) -> float:
        """What early stopping maximises: the mean of the two mAPs the acceptance test compares."""
        metrics = self.metrics(encode)
        return (metrics["category_map"] + metrics["fragment_map"]) / 2
