"""Bytes in, an upright RGB image (or a box of it) out; then the model's input tensor.

Query and gallery images both pass through here, so whatever this module does to pixels the
embeddings see on both sides of a comparison. Decoding is defensive because the bytes come from
strangers: formats are recognised by content and limited to common still formats (Pillow's
other plugins, EPS among them, are attack surface we do not need), and the pixel count is
checked from the header before any pixel is decoded.

Big JPEGs are decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, Pillow's `draft`) when
the caller says how many pixels the model needs: a 12 MP photo then costs a fraction of a full
decode. Crop boxes are given in the coordinates of the image as displayed (after EXIF
orientation) at full resolution, the only coordinates a user ever sees, and are mapped here
through both the orientation and the reduction.

Every other format is decoded in full, whatever the model needs, and a small file can hold many
pixels (an 8 x 6,000,000 PNG of one colour is 105 KB): those are held to FULL_DECODE_PIXELS, a
budget measured so that no request spends more than about 300 ms decoding.
"""

import io
import math
import re
import numbers
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from struct import error as StructError
from typing import Literal

import numpy as np
from PIL import ExifTags, Image, ImageOps

from lookalike.errors import (
    ImageTooLargeError,
    ImageTooSmallError,
    InvalidCropBoxError,
    NotAnImageError,
)

# 50 MP covers phone and most camera photos (48 MP phones: 8064x6048 = 48.8 MP) while bounding
# the memory of formats that cannot be decoded at reduced size (a 50 MP RGBA PNG is 200 MB
# decoded). It sits below Pillow's own warning threshold (89.5 MP), so every image Pillow would
# call a possible bomb is refused here first, whatever Image.MAX_IMAGE_PIXELS is set to.
MAX_PIXELS = 50_000_000
# PNG, TIFF, WebP, GIF and BMP have no reduced decoding: each pixel costs its share of a full
# decode (and of the conversion to RGB). `python -m lab bench decode_budget` measured them at
# 20-63 ms per megapixel for PNG, 31-43 TIFF, 63-87 GIF, 33-63 BMP and up to 93-107 lossless
# WebP on the shared, busy two-core development machine (docs/RELIABILITY.md): 4 MP decode in
# 80-250 ms as PNG, about 370 ms as lossless WebP, and a 2400x1600 PNG (3.8 MP, the size of a
# large screenshot) still passes. It holds for every query (uploads, the CLI's files, a gallery
# image searched by id); indexing decodes the owner's gallery in the background, up to MAX_PIXELS.
FULL_DECODE_PIXELS = 4_000_000
# Formats decoded at reduced size when the caller gives min_side (libjpeg's DCT scaling).
REDUCED_FORMATS = ("JPEG", "MPO")
# Below 8 pixels a side there is no structure left to compare (the model's coarsest feature map
# has a 32-pixel stride); icons and 16x16 thumbnails still pass.
MIN_IMAGE_SIDE = 8
# A crop box can be no smaller than an image may be, for the same reason.
MIN_BOX_SIDE = MIN_IMAGE_SIDE
# is_image() reads at most this many leading bytes; the longest signature, BMP's file header
# followed by its DIB header size, ends at byte 18.
SNIFF_BYTES = 32

# Pillow's names for the formats we open. Camera JPEGs carrying extra frames (a preview, a depth
# map) come back from the JPEG opener as MPO images, whose first frame decodes like any JPEG.
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")

_SIGNATURES = (
    b"\xff\xd8\xff",  # JPEG (and MPO)
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
    b"II+\x00",  # BigTIFF, little-endian
    b"MM\x00+",  # BigTIFF, big-endian
)
_WEBP_CHUNKS = (b"VP8 ", b"VP8L", b"VP8X")
# "BM" alone starts too many text files; Pillow also requires one of these DIB header sizes.
_BMP_HEADER_SIZES = (12, 40, 52, 56, 64, 108, 124)

# Orientations 5-8 turn the stored image a quarter turn, swapping its width and height.
_QUARTER_TURNS = (5, 6, 7, 8)
# Single-channel integer modes hold 16-bit samples (PNG and TIFF 16-bit grey; mode I is how
# Pillow widens them); Pillow's own conversion to 8 bits clips at 255 instead of scaling.
_WIDE_GREY_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_WHITE = (255, 255, 255)

# What Pillow raises for bytes it cannot decode: unknown formats, corrupt headers, truncated
# data (LOAD_TRUNCATED_IMAGES stays False, so truncation surfaces at load), bad chunks, colour
# modes without a conversion to RGB. Pillow's fuzzing treats the same set as "bad input".
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, StructError, IndexError, TypeError, KeyError)

ResizeMode = Literal["squash", "center-crop"]
RESIZE_MODES: tuple[ResizeMode, ...] = ("squash", "center-crop")


@dataclass(frozen=True)
class CropBox:
    """A half-open box (x0 <= x < x1, y0 <= y < y1) in pixels of the image as displayed.

    Only the shape is checked here; whether it fits an image is checked against that image.
    """

    x0: int
    y0: int
    x1: int
    y1: int

    def __post_init__(self) -> None:
        corners = (self.x0, self.y0, self.x1, self.y1)
        if any(type(corner) is not int for corner in corners):
            raise InvalidCropBoxError(f"crop box {corners} must hold four integers (CropBox.parse converts)")
        if min(corners) < 0:
            raise InvalidCropBoxError(f"crop box {corners} has a negative coordinate")
        if self.x1 <= self.x0 or self.y1 <= self.y0:
            raise InvalidCropBoxError(f"crop box {corners} is empty or inverted: need x0 < x1 and y0 < y1")
        if self.width < MIN_BOX_SIDE or self.height < MIN_BOX_SIDE:
            raise InvalidCropBoxError(
                f"crop box {corners} is {self.width}x{self.height} pixels; "
                f"each side must be at least {MIN_BOX_SIDE}"
            )

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @classmethod
    def parse(cls, value: str | Sequence[int]) -> "CropBox":
        """Read "x0,y0,x1,y1" (spaces allowed) or four numbers, as a query string or JSON gives them.

        Whole-valued floats (10.0, as some JSON encoders write integers) are accepted; anything
        with a fraction is not, because a crop box names pixels.
        """
        if isinstance(value, str):
            parts: list[object] = value.split(",")
        elif isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, (bytes, bytearray)):
            parts = list(value)
        else:
            raise InvalidCropBoxError(f"a crop box is 'x0,y0,x1,y1' or four integers, not {type(value).__name__}")
        if len(parts) != 4:
            raise InvalidCropBoxError(f"a crop box has four coordinates x0,y0,x1,y1, not {len(parts)}: {value!r}")
        return cls(*(_pixel_coordinate(part) for part in parts))


def _pixel_coordinate(part: object) -> int:
    number = _number(part.strip()) if isinstance(part, str) else part
    if isinstance(number, bool):
        raise InvalidCropBoxError(f"crop box coordinate {part!r} is not a number of pixels")
    if isinstance(number, numbers.Integral):
        return int(number)
    if isinstance(number, numbers.Real) and math.isfinite(number) and float(number).is_integer():
        return int(number)
    raise InvalidCropBoxError(f"crop box coordinate {part!r} is not a whole number of pixels")


def _number(text: str) -> int | float | None:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return None


def is_image(head: bytes) -> bool:
    """Whether bytes starting with `head` look like an image load_image accepts.

    Pass the first SNIFF_BYTES bytes (or the whole file when shorter). A True here can still
    fail to decode; a False never would have decoded, so the indexer skips it unread.
    """
    head = bytes(head[:SNIFF_BYTES])
    if head.startswith(_SIGNATURES):
        return True
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return head[12:16] in _WEBP_CHUNKS
    if head.startswith(b"BM") and len(head) >= 18:
        return int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES
    return False


def load_image(
    data: bytes,
    box: CropBox | None = None,
    min_side: int | None = None,
    full_decode_pixels: int = MAX_PIXELS,
) -> Image.Image:
    """Decode `data` to an upright RGB image, cropped to `box` when one is given.

    Formats with no reduced decoding are refused above `full_decode_pixels`: requests pass
    FULL_DECODE_PIXELS, so that one request's decoding stays bounded; gallery indexing, which
    runs in the background over the owner's own files, keeps the whole MAX_PIXELS.

    `min_side` is the model's input size: JPEGs are then decoded at the smallest reduced scale
    that keeps at least that many pixels on the shorter side of what is returned (the box, or
    the whole image), wherever the full-resolution original had them. The returned image is thus
    possibly smaller than the original; `box` is always in full-resolution displayed pixels
    (`displayed_size`).
    """
    if min_side is not None and min_side < 1:
        raise ValueError(f"min_side must be a positive number of pixels, not {min_side}")
    with _opened(data, full_decode_pixels) as (encoded, stored_size, shown_size):
        if box is not None:
            _check_inside(box, shown_size)
        reduction = 1
        if min_side is not None:
            region = (box.width, box.height) if box is not None else shown_size
            reduction = _decode_reduced(encoded, stored_size, min(region), min_side)
        with _decoding():
            encoded.load()
            ImageOps.exif_transpose(encoded, in_place=True)
            upright = _to_rgb(encoded)
    if box is None:
        return upright
    return upright.crop(_reduced_box(box, reduction, upright.size))


def displayed_size(data: bytes, full_decode_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(width, height) of the image as displayed, after EXIF orientation, at full resolution:
    the coordinates crop boxes are given in. Read from the header (no pixel is decoded, but for
    a PNG whose EXIF may follow its pixels), with load_image's checks, so that a caller decoding
    at reduced size can still speak them."""
    with _opened(data, full_decode_pixels) as (_, _, shown_size):
        return shown_size


@contextmanager
def _opened(data: bytes, full_decode_pixels: int) -> Iterator[tuple[Image.Image, tuple[int, int], tuple[int, int]]]:
    """The opened (not yet decoded) image, its stored size and its displayed size, once the bytes
    passed every check that needs no pixel: a known format, the pixel limit, the full-decode
    budget (before the EXIF is read: Pillow decodes a whole PNG to find EXIF after its pixels),
    the minimum side."""
    if not data:
        raise NotAnImageError("the image is empty (0 bytes)")
    if not is_image(data[:SNIFF_BYTES]):
        raise NotAnImageError("the bytes are not a JPEG, PNG, WebP, GIF, BMP or TIFF image")
    with _decoding():
        encoded = Image.open(io.BytesIO(data), formats=FORMATS)
    with encoded:
        stored_size = encoded.size
        if stored_size[0] * stored_size[1] > MAX_PIXELS:
            raise ImageTooLargeError(
                f"the image is {stored_size[0]}x{stored_size[1]} pixels; the limit is {MAX_PIXELS:,} pixels"
            )
        _check_decode_budget(encoded, stored_size, full_decode_pixels)
        with _decoding():
            orientation = encoded.getexif().get(ExifTags.Base.Orientation, 1)
        shown_size = stored_size[::-1] if orientation in _QUARTER_TURNS else stored_size
        if min(shown_size) < MIN_IMAGE_SIDE:
            raise ImageTooSmallError(
                f"the image is {shown_size[0]}x{shown_size[1]} pixels; each side must be at least {MIN_IMAGE_SIDE}"
            )
        yield encoded, stored_size, shown_size


@contextmanager
def _decoding() -> Iterator[None]:
    """Turn Pillow's complaints about the bytes into the errors the API reports."""
    try:
        yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        # The warning arrives as an exception only where a process turned warnings into errors.
        raise ImageTooLargeError(
            f"the image is larger than we decode (at most {MAX_PIXELS:,} pixels)"
        ) from error
    except _DECODE_ERRORS as error:
        # Pillow's messages may name the in-memory file object (`<_io.BytesIO object at 0x...>`).
        reason = re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-f]+>", "", str(error)).strip()
        raise NotAnImageError(f"the image could not be decoded: {reason}") from error


def _check_decode_budget(encoded: Image.Image, stored_size: tuple[int, int], budget: int) -> None:
    width, height = stored_size
    if encoded.format not in REDUCED_FORMATS and width * height > budget:
        raise ImageTooLargeError(
            f"the {encoded.format} image is {width}x{height} pixels; PNG, TIFF, WebP, GIF and BMP images "
            f"are decoded up to {budget:,} pixels (send a JPEG, which is decoded at reduced size, up to {MAX_PIXELS:,})"
        )


def _check_inside(box: CropBox, displayed_size: tuple[int, int]) -> None:
    width, height = displayed_size
    if box.x1 > width or box.y1 > height:
        raise InvalidCropBoxError(
            f"crop box ({box.x0}, {box.y0}, {box.x1}, {box.y1}) lies outside the {width}x{height} image "
            f"(as displayed, after EXIF orientation): need x1 <= {width} and y1 <= {height}"
        )


def _decode_reduced(encoded: Image.Image, stored_size: tuple[int, int], region_side: int, min_side: int) -> int:
    """Ask the decoder for the smallest scale that keeps `region_side` at `min_side` pixels or more.

    The scale is uniform, so the region's shorter side (the same length before and after any
    rotation) fixes it; the request itself is made in the stored orientation the decoder sees.
    Returns the reduction factor actually taken (1 for formats with no reduced decoding).
    """
    scale = min_side / region_side
    if scale >= 1:
        return 1
    request = (math.ceil(stored_size[0] * scale), math.ceil(stored_size[1] * scale))
    drafted = encoded.draft("RGB", request)
    if drafted is None:
        return 1
    _, (_, _, reduced_width, _) = drafted
    return round(stored_size[0] / reduced_width)


def _reduced_box(box: CropBox, reduction: int, decoded_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The box in pixels of an image decoded at 1/`reduction` scale, rounded outward.

    Each decoded pixel covers a `reduction`-wide block of the original, except the last block of
    a row or column, which may be partial; on an axis the orientation mirrored, that partial
    block comes first and shifts every later block by up to `reduction - 1` pixels. Extending
    the far edge by that much keeps every requested pixel whichever way the axis runs.
    """
    width, height = decoded_size
    return (
        box.x0 // reduction,
        box.y0 // reduction,
        min(width, _ceil_div(box.x1 + reduction - 1, reduction)),
        min(height, _ceil_div(box.y1 + reduction - 1, reduction)),
    )


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB whatever the source mode; transparency is composited over white, as a viewer shows it."""
    if image.mode in _WIDE_GREY_MODES:
        samples = np.clip(np.asarray(image, dtype=np.float32), 0, 65535)
        return Image.fromarray(np.rint(samples / 257).astype(np.uint8)).convert("RGB")
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        flattened = Image.new("RGB", rgba.size, _WHITE)
        flattened.paste(rgba, mask=rgba.getchannel("A"))
        return flattened
    return image if image.mode == "RGB" else image.convert("RGB")


def to_tensor(
    image: Image.Image,
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    resize: ResizeMode = "squash",
) -> np.ndarray:
    """The model input for one RGB image: float32 (3, size, size), z-scored per channel.

    "squash" resizes to size x size ignoring the aspect ratio, so nothing of a crop is lost;
    "center-crop" scales the shorter side to `size` and keeps the centre square. `mean` and
    `std` are on the [0, 1] scale and come from the model's metadata.
    """
    if image.mode != "RGB":
        raise ValueError(f"to_tensor takes RGB images (load_image returns them), not mode {image.mode}")
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, not {size}")
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError(f"mean and std need one value per RGB channel, std positive: {mean}, {std}")
    if resize == "squash":
        resized = image.resize((size, size), Image.Resampling.BICUBIC)
    elif resize == "center-crop":
        resized = ImageOps.fit(image, (size, size), Image.Resampling.BICUBIC)
    else:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, not {resize!r}")
    pixels = np.asarray(resized, dtype=np.float32) / np.float32(255)
    normalized = (pixels - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(normalized.transpose(2, 0, 1))
