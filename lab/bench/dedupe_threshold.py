"""Measure where "near-duplicate" ends, to choose ranking.DEDUPE_THRESHOLD.

    python -m lab bench dedupe_threshold

For real photos (the demo packages' interiors and scikit-image's photos), the cosine between a
photo and a copy of it is measured for two kinds of copy:
- duplicates, which re-ranking should collapse: JPEG re-saves at several qualities, a resize to
  half size, a PNG round trip;
- distinct edits, which must survive: crops keeping 50-90% of the area, a horizontal flip, a
  small rotation, colour and brightness changes, a caption bar.
Different views of one building (mvtb-data) and each photo's nearest other photo are shown too.
The threshold must sit above every edit and below the duplicates.
"""

import io
from collections.abc import Sequence
from pathlib import Path

import interior_photos
import mvtbdata
import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from lab.bench import argument_parser
from lookalike.paths import default_model_path
from lookalike.embedding import Embedder
from lookalike.images import load_image
from lookalike.ranking import DEDUPE_THRESHOLD


def encode(image: Image.Image, format: str = "JPEG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def duplicates(image: Image.Image) -> dict[str, bytes]:
    half = image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)
    return {
        "jpeg q95": encode(image, quality=95),
        "jpeg q75": encode(image, quality=75),
        "jpeg q50": encode(image, quality=50),
        "half size": encode(half, quality=90),
        "png": encode(image, "PNG"),
    }


def edits(image: Image.Image) -> dict[str, bytes]:
    w, h = image.size
    captioned = image.copy()
    ImageDraw.Draw(captioned).rectangle((0, int(h * 0.85), w, h), fill="white")

    def crop(fraction: float) -> Image.Image:
        side = fraction**0.5
        return image.crop((0, 0, int(w * side), int(h * side)))

    return {
        "crop 90%": encode(crop(0.9)),
        "crop 70%": encode(crop(0.7)),
        "crop 50%": encode(crop(0.5)),
        "flip": encode(ImageOps.mirror(image)),
        "rotate 5deg": encode(image.rotate(5, expand=False)),
        "saturation x0.3": encode(ImageEnhance.Color(image).enhance(0.3)),
        "brightness x1.4": encode(ImageEnhance.Brightness(image).enhance(1.4)),
        "caption bar": encode(captioned),
    }


def photos() -> list[Image.Image]:
    import skimage.data

    folder = Path(interior_photos.__file__).parent / "images"
    images = [Image.open(path).convert("RGB") for path in sorted(folder.glob("*.jpg"))]
    images += [Image.fromarray(getattr(skimage.data, name)()) for name in ("astronaut", "chelsea", "coffee", "rocket")]
    return images


def embed(embedder: Embedder, payloads: list[bytes]) -> np.ndarray:
    return embedder.embed_images([load_image(data, min_side=embedder.info.input_size) for data in payloads])


def main(argv: Sequence[str] | None = None) -> None:
    argument_parser(__file__, __doc__).parse_args(argv)
    embedder = Embedder(default_model_path())
    images = photos()
    originals = embed(embedder, [encode(image, "PNG") for image in images])
    by_kind: dict[str, dict[str, list[float]]] = {"duplicate": {}, "edit": {}}
    for image, original in zip(images, originals):
        for kind, variants in (("duplicate", duplicates(image)), ("edit", edits(image))):
            vectors = embed(embedder, list(variants.values()))
            for name, cosine in zip(variants, vectors @ original):
                by_kind[kind].setdefault(name, []).append(float(cosine))

    similarity = originals @ originals.T
    np.fill_diagonal(similarity, -1)
    nearest_other = similarity.max(axis=1)
    views = Path(mvtbdata.__file__).parent / "images"
    buildings = embed(embedder, [(views / f"building2-{i}.png").read_bytes() for i in (1, 2, 3)])
    view_pairs = buildings @ buildings.T

    print(f"{len(images)} photos; cosine to the original (min / median / max)")
    for kind, variants in by_kind.items():
        for name, cosines in variants.items():
            print(f"  {kind:9s} {name:16s} {min(cosines):.4f} / {np.median(cosines):.4f} / {max(cosines):.4f}")
    print(f"  nearest other photo        {nearest_other.min():.4f} / {np.median(nearest_other):.4f} / {nearest_other.max():.4f}")
    print(f"  other views of a building  {view_pairs[np.triu_indices(3, 1)].min():.4f} .. {view_pairs[np.triu_indices(3, 1)].max():.4f}")
    highest_edit = max(max(cosines) for cosines in by_kind["edit"].values())
    lowest_duplicate = min(min(cosines) for cosines in by_kind["duplicate"].values())
    print(f"highest edit {highest_edit:.4f}, lowest duplicate {lowest_duplicate:.4f}")
    for kind, variants in by_kind.items():
        cosines = np.concatenate([np.asarray(values) for values in variants.values()])
        print(f"at DEDUPE_THRESHOLD = {DEDUPE_THRESHOLD}: {np.mean(cosines >= DEDUPE_THRESHOLD):.0%} of {kind}s collapse")


if __name__ == "__main__":
    main()
