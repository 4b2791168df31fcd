"""The Tiny ImageNet reader (lab.datasets), and the skip that tests without the data sets get."""

import io

import pytest
from PIL import Image

from lab.datasets import tiny_imagenet_train, tiny_imagenet_val
from tests.support.datasets import REQUIRE_DATASETS, require_dataset


def test_training_images_come_by_class_then_number_with_half_open_boxes(tiny_imagenet_train_tar):
    images = list(tiny_imagenet_train(tiny_imagenet_train_tar, classes=3, per_class=4))
    labels = sorted({image.label for _, image in images})
    assert [(image.label, number) for number, image in images] == [(label, n) for label in labels for n in range(4)]
    assert all(image.name == f"{image.label}_{number}.JPEG" for number, image in images)
    for _, image in images:
        with Image.open(io.BytesIO(image.data)) as decoded:
            width, height = decoded.size
        x0, y0, x1, y1 = image.box
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height, image


def test_the_first_classes_are_the_first_wordnet_ids_and_boxless_classes_say_so(tiny_imagenet_train_tar):
    first_of_each = [image for _, image in tiny_imagenet_train(tiny_imagenet_train_tar, per_class=1)]
    labels = [image.label for image in first_of_each]
    assert labels == sorted(labels) and len(labels) == 202
    assert [image.label for _, image in tiny_imagenet_train(tiny_imagenet_train_tar, classes=2, per_class=1)] == labels[:2]
    assert [image.label for image in first_of_each if image.box is None] == ["n02480855", "n10148035"]
    assert max(image.box[2] for image in first_of_each if image.box) == 64, "inclusive corner 63 is half-open 64"


def test_validation_images_come_in_file_number_order_with_half_open_boxes(tiny_imagenet_val_tar):
    images = list(tiny_imagenet_val(tiny_imagenet_val_tar, limit=12))
    assert [image.name for image in images] == [f"val_{n}.JPEG" for n in range(12)]
    assert images[0].label == "n03444034" and images[0].box == (0, 32, 45, 63)


def test_a_missing_data_set_skips_naming_the_file_and_lookalike_datasets_or_fails_when_required(tmp_path, monkeypatch):
    tar = tmp_path / "tiny-imagenet" / "val.tar"
    monkeypatch.delenv(REQUIRE_DATASETS, raising=False)
    skipped = outcome_of(lambda: require_dataset(tar))
    assert isinstance(skipped, pytest.skip.Exception), skipped
    assert str(skipped).startswith(f"missing {tar}: ") and "LOOKALIKE_DATASETS" in str(skipped)
    monkeypatch.setenv(REQUIRE_DATASETS, "1")
    failed = outcome_of(lambda: require_dataset(tar))
    assert isinstance(failed, pytest.fail.Exception), failed
    assert str(failed) == str(skipped)
    tar.parent.mkdir()
    tar.write_bytes(b"")
    assert require_dataset(tar) == tar


def outcome_of(call) -> BaseException | None:
    """The skip or failure a call raises, caught: left alone it would skip or fail this test itself."""
    try:
        call()
    except (pytest.skip.Exception, pytest.fail.Exception) as raised:
        return raised
    return None
