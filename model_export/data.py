"""What training learns from: images (the Tiny ImageNet training tar, the gallery) and their pairs.

Every image becomes one row of the training set, identified by the SHA-256 of its bytes, so a
gallery file that is a byte-for-byte copy of a tar member (the click simulator's gallery is
made of training-subset images) is one row, one set of cached features, whatever its name.

Two kinds of supervised pairs, besides the augmentation pairs every image yields:
- click pairs, the `pairs.jsonl` that `lookalike training-set` writes (read by
  lookalike.interactions.click_labels, which owns the format): gallery keys of a query and of a
  clicked result, the shown-but-not-clicked candidates as hard negatives, and a weight (how
  much evidence backs the pair);
- class pairs, two images of one class of the training tar, the stand-in for clicks when no
  event log exists yet (the click simulator clicks same-class results, so these are what a
  perfectly attentive user would produce).

The held-out part of the tar (the last `holdout` images of every class by file number) is for
choosing hyperparameters and is never a row of the training set. Validation images are not
read here at all: reported figures are measured on them elsewhere.
"""

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lookalike.errors import NotFoundError
from lookalike.interactions.click_labels import TrainingPair
from lookalike.images import SNIFF_BYTES, is_image
from lookalike.sources import FolderSource
from lab.datasets import LabelledImage, tiny_imagenet_train


@dataclass(frozen=True)
class TrainImage:
    key: str  # the tar's file name or a gallery key
    data: bytes
    label: str | None = None  # WordNet id for tar images; gallery images carry none
    box: tuple[int, int, int, int] | None = None  # object box, half-open pixels
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", hashlib.sha256(self.data).hexdigest())

    @classmethod
    def from_labelled(cls, image: LabelledImage) -> "TrainImage":
        return cls(image.name, image.data, image.label, image.box)


@dataclass
class TrainingSet:
    """Rows (unique images) and the supervised pairs between them, as row numbers.

    `labels[i]` is the class number of row i, -1 without one. `pair_negatives` is padded with
    -1 to the longest list.
    """

    images: list[TrainImage]
    labels: np.ndarray
    pair_queries: np.ndarray
    pair_positives: np.ndarray
    pair_weights: np.ndarray
    pair_negatives: np.ndarray

    @property
    def has_clicks(self) -> bool:
        return len(self.pair_queries) > 0

    @property
    def has_classes(self) -> bool:
        return np.bincount(self.labels[self.labels >= 0]).max(initial=0) >= 2


def split_tiny_imagenet(
    tar_path: str | Path, classes: int | None, per_class: int, holdout: int
) -> tuple[list[TrainImage], list[TrainImage]]:
    """(training images, held-out images): the last `holdout` file numbers of each class are held out."""
    if not 0 <= holdout < per_class:
        raise ValueError(f"holdout must be in [0, {per_class}), not {holdout}")
    train, held_out = [], []
    for number, image in tiny_imagenet_train(tar_path, classes, per_class):
        (held_out if number >= per_class - holdout else train).append(TrainImage.from_labelled(image))
    return train, held_out


def gallery_images(gallery_dir: str | Path, keys: set[str]) -> dict[str, TrainImage]:
    """The gallery images the pairs name; keys missing from the gallery or not images are left out."""
    source = FolderSource(gallery_dir)
    found = {}
    for key in sorted(keys):
        try:
            data = source.read(key)
        except (NotFoundError, OSError):
            continue
        if is_image(data[:SNIFF_BYTES]):
            found[key] = TrainImage(key, data)
    return found


def build_training_set(images: list[TrainImage], pairs: list[TrainingPair], gallery: dict[str, TrainImage]) -> TrainingSet:
    """One row per distinct image (tar images first); pairs whose query or positive is missing are dropped."""
    rows: dict[str, int] = {}
    unique: list[TrainImage] = []
    for image in [*images, *gallery.values()]:
        if image.digest not in rows:
            rows[image.digest] = len(unique)
            unique.append(image)
    classes = {label: number for number, label in enumerate(sorted({i.label for i in unique if i.label}))}
    labels = np.array([classes.get(image.label, -1) for image in unique], dtype=np.int64)

    def row(key: str) -> int:
        image = gallery.get(key)
        return rows[image.digest] if image is not None else -1

    kept = []
    for pair in pairs:
        query, positive = row(pair.query), row(pair.positive)
        if query >= 0 and positive >= 0 and query != positive and pair.weight > 0:
            negatives = [n for n in map(row, pair.negatives) if n >= 0 and n not in (query, positive)]
            kept.append((query, positive, negatives, pair.weight))
    width = max((len(negs) for _, _, negs, _ in kept), default=0)
    negatives = np.full((len(kept), width), -1, dtype=np.int64)
    for index, (_, _, negs, _) in enumerate(kept):
        negatives[index, : len(negs)] = negs
    return TrainingSet(
        images=unique,
        labels=labels,
        pair_queries=np.array([q for q, _, _, _ in kept], dtype=np.int64),
        pair_positives=np.array([p for _, p, _, _ in kept], dtype=np.int64),
        pair_weights=np.array([w for _, _, _, w in kept], dtype=np.float64),
        pair_negatives=negatives,
    )
