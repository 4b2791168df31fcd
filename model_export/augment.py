"""Augmented views: what a query may look like when its answer is a gallery image.

View 0 of an image is the image itself, as indexing sees it. Views 1.. are edits users make
or cause: a fragment or a looser crop (random resized crop, down to `crop_area[0]` of the area,
so that fragment queries learn to find their whole image), a mirror image, colour changes,
blur, JPEG re-encoding. Each view's randomness is seeded by (seed, image digest, view number),
so a view is the same whichever process renders it, in whatever order: the feature cache and
the unfrozen-backbone loop see identical pixels.
"""

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from lab.datasets import random_crop_box
from lookalike.images import MIN_IMAGE_SIDE
from model_export.data import TrainImage


@dataclass(frozen=True)
class EditStrengths:
    """What the PIL edits here and the tensor edits (model_export.tensor_views) share."""

    crop_area: tuple[float, float] = (0.1, 1.0)  # fraction of the image's area a crop keeps
    max_aspect: float = 2.0  # crops' aspect ratio is log-uniform in [1/max_aspect, max_aspect]
    flip: float = 0.5
    jitter: float = 0.8  # probability of a colour change
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.05  # fraction of the colour wheel
    blur: float = 0.3


@dataclass(frozen=True)
class AugmentConfig(EditStrengths):
    blur_radius: tuple[float, float] = (0.3, 1.5)  # pixels of the (small) source image
    jpeg: float = 0.5
    jpeg_quality: tuple[int, int] = (30, 90)


def view_rng(seed: int, digest: str, view: int) -> np.random.Generator:
    return np.random.default_rng([seed, int(digest[:16], 16), view])


def augment(image: Image.Image, config: AugmentConfig, rng: np.random.Generator) -> Image.Image:
    """One random edit of an RGB image."""
    width, height = image.size
    area = rng.uniform(*config.crop_area)
    box = random_crop_box(width, height, area, rng, config.max_aspect)
    if min(box[2] - box[0], box[3] - box[1]) >= MIN_IMAGE_SIDE:
        image = image.crop(box)
    if rng.random() < config.flip:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if rng.random() < config.jitter:
        image = _jitter(image, config, rng)
    if rng.random() < config.blur:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(*config.blur_radius)))
    if rng.random() < config.jpeg:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1)))
        with Image.open(buffer) as reencoded:
            image = reencoded.convert("RGB")
    return image


def _jitter(image: Image.Image, config: AugmentConfig, rng: np.random.Generator) -> Image.Image:
    for enhancer, strength in (
        (ImageEnhance.Brightness, config.brightness),
        (ImageEnhance.Contrast, config.contrast),
        (ImageEnhance.Color, config.saturation),
    ):
        image = enhancer(image).enhance(rng.uniform(1 - strength, 1 + strength))
    hsv = np.asarray(image.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + round(rng.uniform(-config.hue, config.hue) * 256)) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def training_view(image: Image.Image, digest: str, view: int, seed: int, config: AugmentConfig) -> Image.Image:
    """View 0 is the image itself; view n > 0 its n-th augmentation."""
    return image if view == 0 else augment(image, config, view_rng(seed, digest, view))


@dataclass(frozen=True)
class TrainingViews:
    """The image and count - 1 augmentations of it: what training pairs are made of."""

    count: int
    seed: int
    config: AugmentConfig

    def __call__(self, image: Image.Image, item: TrainImage) -> list[Image.Image]:
        return [training_view(image, item.digest, view, self.seed, self.config) for view in range(self.count)]


@dataclass(frozen=True)
class ProbeViews:
    """What held-out images are measured with: the image (the gallery entry), its annotated
    object box (the image itself without one) and a half-area crop; the queries of the fragment
    evaluation and of tests/test_retrieval.py."""

    count: int = 3

    def __call__(self, image: Image.Image, item: TrainImage) -> list[Image.Image]:
        crop = random_crop_box(*image.size, 0.5, view_rng(0, item.digest, 0))
        return [image, image.crop(item.box) if item.box else image, image.crop(crop)]
