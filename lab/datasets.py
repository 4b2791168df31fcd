"""Readers for the evaluation photos (Tiny ImageNet tars), read in place without unpacking.

Used by the retrieval test, the benchmarks and offline evaluation; the images themselves are
never copied into the repository.
"""

import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# The one place that says where the data sets are: `LOOKALIKE_DATASETS`, else `shared/datasets`
# beside the repository (read in place, never copied into it).
DATASETS_ROOT = Path(os.environ.get("LOOKALIKE_DATASETS") or Path(__file__).resolve().parents[2] / "shared" / "datasets")
TINY_IMAGENET_VAL = DATASETS_ROOT / "tiny-imagenet" / "val.tar"
TINY_IMAGENET_TRAIN = DATASETS_ROOT / "tiny-imagenet" / "train-100.tar"


@dataclass(frozen=True)
class LabelledImage:
    name: str
    data: bytes
    label: str
    box: tuple[int, int, int, int]  # half-open x0, y0, x1, y1 (the tar lists inclusive corners)


def tiny_imagenet_val(tar_path: str | Path, limit: int | None = None) -> Iterator[LabelledImage]:
    """Validation images in file-number order (val_0, val_1, ...), with class and object box."""
    with tarfile.open(tar_path) as archive:
        annotations = archive.extractfile("tiny-imagenet/val/val_annotations.txt").read().decode()
        labels = {}
        for line in annotations.splitlines():
            name, label, *corners = line.split("\t")
            x0, y0, x1, y1 = map(int, corners)
            labels[name] = (label, (x0, y0, x1 + 1, y1 + 1))
        names = sorted(labels, key=lambda name: int(name.removeprefix("val_").split(".")[0]))
        for name in names[:limit]:
            label, box = labels[name]
            data = archive.extractfile(f"tiny-imagenet/val/images/{name}").read()
            yield LabelledImage(name, data, label, box)


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
