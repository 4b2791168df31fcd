"""Real photos for tests: scikit-image's bundled pictures, written as files in several formats."""

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data


PHOTOS = {
    "astronaut": data.astronaut,
    "chelsea": data.chelsea,
    "coffee": data.coffee,
    "rocket": data.rocket,
    "motorcycle": lambda: data.stereo_motorcycle()[0],
    "hubble": data.hubble_deep_field,
    "retina": data.retina,
}


def photo(name: str) -> Image.Image:
    return Image.fromarray(np.asarray(PHOTOS[name]())).convert("RGB")


def encode(image: Image.Image, format: str = "JPEG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims `width` x `height` pixels and holds none: a bomb's header, built cheaply."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def write_gallery(root: Path) -> dict[str, Path]:
    """Seven photos: upper-case extension, no extension, PNG, WebP, a nested folder."""
    files = {
        "astronaut.jpg": encode(photo("astronaut"), quality=92),
        "cats/chelsea.JPEG": encode(photo("chelsea"), quality=92),
        "coffee": encode(photo("coffee"), "PNG"),
        "rocket.webp": encode(photo("rocket"), "WEBP", quality=90),
        "nested/deeper/motorcycle.png": encode(photo("motorcycle"), "PNG"),
        "hubble.jpg": encode(photo("hubble"), quality=92),
        "retina.jpg": encode(photo("retina"), quality=92),
    }
    written = {}
    for key, payload in files.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
        written[key] = path
    return written
