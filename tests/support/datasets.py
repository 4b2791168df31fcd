"""The data sets a test reads, or a skip that names the missing file and how to get it.

Tests that read the Tiny ImageNet tars ask for them here, from a fixture (pytest then reports a
skip under the name of every test that asked): without the file such a test is skipped, so a
checkout without the data still runs everything else. CI sets LOOKALIKE_REQUIRE_DATASETS=1
(.ci/run), which makes the same check fail instead: there, a missing tar must not pass as fewer tests.
"""

import os
from pathlib import Path

import pytest

from lab.datasets import DATASETS_ROOT, TINY_IMAGENET_TRAIN, TINY_IMAGENET_VAL

REQUIRE_DATASETS = "LOOKALIKE_REQUIRE_DATASETS"


def require_dataset(path: Path) -> Path:
    """`path` when the file is there; otherwise skip the test that asked, or fail it when
    LOOKALIKE_REQUIRE_DATASETS=1."""
    if path.is_file():
        return path
    message = (
        f"missing {path}: put tiny-imagenet/ (val.tar, train-100.tar) under {DATASETS_ROOT}, "
        "or set LOOKALIKE_DATASETS to the folder that holds it"
    )
    if os.environ.get(REQUIRE_DATASETS) == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def tiny_imagenet_val_tar() -> Path:
    return require_dataset(TINY_IMAGENET_VAL)


@pytest.fixture(scope="session")
def tiny_imagenet_train_tar() -> Path:
    return require_dataset(TINY_IMAGENET_TRAIN)
