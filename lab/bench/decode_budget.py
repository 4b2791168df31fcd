"""Decode time against pixel count per format: the measurement behind images.FULL_DECODE_PIXELS.

    python -m lab bench decode_budget [--quick] [--repeats 3] [--target-ms 300]

JPEGs are decoded at reduced size (libjpeg's DCT scaling), so their cost barely grows with their
pixel count; PNG, TIFF, WebP, GIF and BMP are decoded in full whatever the model needs. For each
of those (and the colour modes that take the slowest path: transparency composited over white,
16-bit grey widened through numpy, an 8-pixel-wide strip of extreme aspect) this encodes
synthetic images of growing pixel counts, compressible enough to stay far below the request size
limit, and times what a query costs before the model: `load_image` at the model's input size,
then `to_tensor`. The median over `--repeats` runs after a warm-up gives milliseconds per
megapixel; the largest rate over every format sets the pixel budget that keeps a full decode
under `--target-ms`. `--quick` uses small images only (a smoke run, not a measurement).
"""

import io
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from lab.bench import argument_parser, milliseconds
from lookalike.images import FULL_DECODE_PIXELS, MAX_PIXELS, load_image, to_tensor

INPUT_SIZE = 224
MEAN = STD = (0.5, 0.5, 0.5)
MEGAPIXELS = (1, 2, 4, 8)
QUICK_MEGAPIXELS = (0.25, 0.5)


def _pattern(width: int, height: int, channels: int) -> np.ndarray:
    """A smooth gradient with a little structure: what a photo's flat regions compress like."""
    x = np.arange(width, dtype=np.uint32)[None, :]
    y = np.arange(height, dtype=np.uint32)[:, None]
    planes = [((x * (3 + c) + y * (5 + c) + (x ^ y) % 7) % 256).astype(np.uint8) for c in range(channels)]
    return np.stack(planes, axis=-1) if channels > 1 else planes[0]


def _encode(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def _square(pixels: int) -> tuple[int, int]:
    side = int(pixels**0.5)
    return side, pixels // side


# name -> (size for a pixel count, bytes for a size)
CASES: dict[str, tuple[Callable[[int], tuple[int, int]], Callable[[int, int], bytes]]] = {
    "PNG RGB": (_square, lambda w, h: _encode(Image.fromarray(_pattern(w, h, 3)), "PNG", compress_level=9)),
    "PNG RGBA": (_square, lambda w, h: _encode(Image.fromarray(_pattern(w, h, 4)), "PNG", compress_level=9)),
    "PNG grey 16-bit": (
        _square,
        lambda w, h: _encode(Image.fromarray(_pattern(w, h, 1).astype(np.uint16) * 257), "PNG", compress_level=9),
    ),
    "PNG RGB 8 wide": (lambda p: (8, p // 8), lambda w, h: _encode(Image.fromarray(_pattern(w, h, 3)), "PNG", compress_level=9)),
    "TIFF RGB LZW": (_square, lambda w, h: _encode(Image.fromarray(_pattern(w, h, 3)), "TIFF", compression="tiff_lzw")),
    "WebP lossless": (_square, lambda w, h: _encode(Image.fromarray(_pattern(w, h, 3)), "WEBP", lossless=True, method=0)),
    "GIF": (_square, lambda w, h: _encode(Image.fromarray(_pattern(w, h, 1)).convert("P"), "GIF")),
    "BMP RGB": (_square, lambda w, h: _encode(Image.fromarray(_pattern(w, h, 3)), "BMP")),
    "JPEG (reduced)": (_square, lambda w, h: _encode(Image.fromarray(_pattern(w, h, 3)), "JPEG", quality=90)),
}


def query_cost(data: bytes) -> None:
    to_tensor(load_image(data, min_side=INPUT_SIZE, full_decode_pixels=MAX_PIXELS), INPUT_SIZE, MEAN, STD)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argument_parser(__file__, __doc__)
    parser.add_argument("--quick", action="store_true", help="small images only: a smoke run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--target-ms", type=float, default=300.0)
    args = parser.parse_args(argv)
    megapixels = QUICK_MEGAPIXELS if args.quick else MEGAPIXELS
    print(f"{'case':<16} {'size':>13} {'bytes':>11} {'ms':>8} {'ms/MP':>7}")
    worst: dict[str, float] = {}
    for name, (size_of, encode) in CASES.items():
        for mp in megapixels:
            width, height = size_of(int(mp * 1_000_000))
            data = encode(width, height)
            ms = milliseconds(lambda: query_cost(data), args.repeats)
            rate = ms / (width * height / 1e6)
            if not name.startswith("JPEG"):
                worst[name] = max(worst.get(name, 0.0), rate)
            print(f"{name:<16} {width:>6}x{height:<6} {len(data):>11,} {ms:>8.1f} {rate:>7.1f}", flush=True)
    slowest = max(worst, key=worst.get)
    budget = args.target_ms / worst[slowest] * 1e6
    print(f"slowest full decode: {slowest}, {worst[slowest]:.1f} ms/MP")
    print(f"pixels decodable in {args.target_ms:.0f} ms at that rate: {budget:,.0f} (images.FULL_DECODE_PIXELS = {FULL_DECODE_PIXELS:,})")

