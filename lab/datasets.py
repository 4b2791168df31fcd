"""The one reader of the Tiny ImageNet tars, read in place without unpacking.

Validation images are what reported figures are measured on (the retrieval test, the benchmarks,
offline evaluation); training images are what the click simulator, fine-tuning and calibration
use, never validation images. Only this module knows the tars' layout; the images themselves
are never copied into the repository.
"""

import os
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# The one place that says where the data sets are: `LOOKALIKE_DATASETS`, else `shared/datasets`
# beside the repository (read in place, never copied into it).
DATASETS_ROOT = Path(os.environ.get("LOOKALIKE_DATASETS") or Path(__file__).resolve().parents[2] / "shared" / "datasets")
VAL_TAR = Path("tiny-imagenet") / "val.tar"  # under a datasets root
TRAIN_TAR = Path("tiny-imagenet") / "train-100.tar"
TINY_IMAGENET_VAL = DATASETS_ROOT / VAL_TAR
TINY_IMAGENET_TRAIN = DATASETS_ROOT / TRAIN_TAR
TINY_IMAGENET_CLASSES = 202
TRAIN_IMAGES_PER_CLASS = 100  # file numbers 0..99 of every class are in the training tar
_VAL_ANNOTATIONS = "tiny-imagenet/val/val_annotations.txt"
_TRAIN_IMAGE = re.compile(r"tiny-imagenet/train/(n\d+)/images/(n\d+)_(\d+)\.JPEG")
_TRAIN_BOXES = re.compile(r"tiny-imagenet/train/(n\d+)/(n\d+)_boxes\.txt")


@dataclass(frozen=True)
class LabelledImage:
    name: str  # the file's name: val_N.JPEG, or WNID_N.JPEG in the training tar
    data: bytes
    label: str  # WordNet id
    # The object, half-open x0, y0, x1, y1 (the tars list inclusive corners); None where the
    # training tar has no boxes file for the class (n02480855, n10148035).
    box: tuple[int, int, int, int] | None


def tiny_imagenet_val(tar_path: str | Path, limit: int | None = None) -> Iterator[LabelledImage]:
    """Validation images in file-number order (val_0, val_1, ...), with class and object box."""
    with tarfile.open(tar_path) as archive:
        labels = {}
        for line in archive.extractfile(_VAL_ANNOTATIONS).read().decode().splitlines():
            name, label, *corners = line.split("\t")
            labels[name] = (label, _half_open(corners))
        names = sorted(labels, key=lambda name: int(name.removeprefix("val_").split(".")[0]))
        for name in names[:limit]:
            label, box = labels[name]
            data = archive.extractfile(f"tiny-imagenet/val/images/{name}").read()
            yield LabelledImage(name, data, label, box)


def tiny_imagenet_train(
    tar_path: str | Path, classes: int | None = None, per_class: int = TRAIN_IMAGES_PER_CLASS
) -> Iterator[tuple[int, LabelledImage]]:
    """(file number, image) for the first `classes` classes (sorted WordNet ids), file numbers
    below `per_class`, by class then number."""
    with tarfile.open(tar_path) as archive:
        members = archive.getmembers()
        wnids = sorted({match[1] for match in map(_TRAIN_IMAGE.fullmatch, (member.name for member in members)) if match})
        chosen = set(wnids[:classes])
        boxes: dict[str, tuple[int, int, int, int]] = {}
        for member in members:
            match = _TRAIN_BOXES.fullmatch(member.name)
            if match and match[1] in chosen:
                for line in archive.extractfile(member).read().decode().splitlines():
                    name, *corners = line.split("\t")
                    boxes[name] = _half_open(corners)
        images = []
        for member in members:
            match = _TRAIN_IMAGE.fullmatch(member.name)
            if match and match[1] in chosen and int(match[3]) < per_class:
                images.append((match[1], int(match[3]), member))
        for wnid, number, member in sorted(images, key=lambda item: (item[0], item[1])):
            name = member.name.rsplit("/", 1)[1]
            yield number, LabelledImage(name, archive.extractfile(member).read(), wnid, boxes.get(name))


def _half_open(corners: list[str]) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = map(int, corners)
    return x0, y0, x1 + 1, y1 + 1


def random_crop_box(
    width: int, height: int, area_fraction: float, rng, max_aspect: float = 2.0
) -> tuple[int, int, int, int]:
    """A half-open box keeping `area_fraction` of the image, at a random position and aspect ratio.

    The aspect ratio is log-uniform in [1/max_aspect, max_aspect], then clipped to fit the image
    so that the area stays as asked.
    """
    area = area_fraction * width * height
    aspect = float(max_aspect ** rng.uniform(-1.0, 1.0))
    box_width = min(width, max(1, round((area * aspect) ** 0.5)))
    box_height = min(height, max(1, round(area / box_width)))
    box_width = min(width, max(1, round(area / box_height)))
    x0 = int(rng.integers(0, width - box_width + 1))
    y0 = int(rng.integers(0, height - box_height + 1))
    return x0, y0, x0 + box_width, y0 + box_height


def half_area_crop_queries(images: list[LabelledImage], seed: int = 2026) -> list[bytes]:
    """The crop-retrieval protocol: each image cropped to 50% of its area, saved as a new PNG."""
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    queries = []
    for labelled in images:
        with Image.open(io.BytesIO(labelled.data)) as image:
            crop = image.convert("RGB").crop(random_crop_box(*image.size, 0.5, rng))
        buffer = io.BytesIO()
        crop.save(buffer, format="PNG")
        queries.append(buffer.getvalue())
    return queries
