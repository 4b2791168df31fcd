"""Where a test's training run reads and writes: the SageMaker folders under one temporary root."""

from pathlib import Path

from lab.datasets import TINY_IMAGENET_TRAIN
from model_export import train


def training_paths(root: Path, base_model: Path, feature_cache=None, clicks=None, gallery=None) -> train.Paths:
    return train.Paths(
        train=TINY_IMAGENET_TRAIN,
        clicks=clicks,
        gallery=gallery,
        model_dir=root / "model",
        output_dir=root / "output",
        checkpoint_dir=root / "checkpoints",
        feature_cache=feature_cache or root / "features",
        base_model=base_model,
    )
