"""images.py: decoding untrusted bytes, orientation, colour modes, crop boxes, tensors.

Every image is generated here with Pillow and numpy. The expected displayed orientation comes
from the EXIF specification (which stored row and column end up at the top and left), not from
Pillow's transpose table, so that a wrong mapping in either place shows up.
"""

import io
import warnings

import numpy as np
import pytest
from PIL import Image, ImageFile

from lookalike.errors import (
    ImageTooLargeError,
    ImageTooSmallError,
    InvalidCropBoxError,
    LookalikeError,
    NotAnImageError,
)
from lookalike.images import (
    FULL_DECODE_PIXELS,
    MAX_PIXELS,
    MIN_BOX_SIDE,
    MIN_IMAGE_SIDE,
    SNIFF_BYTES,
    CropBox,
    displayed_size,
    is_image,
    load_image,
    to_tensor,
)
from tests.support.photos import png_header_only

RED, GREEN, BLUE, WHITE, GREY = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (90, 90, 90)
ORIENTATION_TAG = 0x0112

# Displayed pixels from stored ones, per EXIF orientation (array[y, x]): 2 mirrors, 3 turns a
# half turn, 4 flips, 5 transposes, 6 turns a quarter clockwise, 7 transverses, 8 turns a
# quarter anticlockwise.
DISPLAYED = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1, :],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}
# The stored pixels that display as a given image: every orientation is its own inverse except
# the two quarter turns, which undo each other.
STORED_ORIENTATION = {**{o: o for o in DISPLAYED}, 6: 8, 8: 6}


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def quadrants(width: int = 64, height: int = 48) -> Image.Image:
    """Red top-left, green top-right, blue bottom-left, white bottom-right: no symmetry to hide a flip."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[: height // 2, : width // 2] = RED
    pixels[: height // 2, width // 2 :] = GREEN
    pixels[height // 2 :, : width // 2] = BLUE
    pixels[height // 2 :, width // 2 :] = WHITE
    return Image.fromarray(pixels)


def quadrant_colours(image: Image.Image) -> list[tuple[int, ...]]:
    """The colours at the centres of the four quadrants, in reading order."""
    width, height = image.size
    return [image.getpixel((x * width // 4, y * height // 4)) for y in (1, 3) for x in (1, 3)]


def assert_colours(actual, expected, tolerance: int, what: str) -> None:
    difference = np.abs(np.asarray(actual, int) - np.asarray(expected, int)).max()
    assert difference <= tolerance, f"{what}: got {actual}, expected {expected} (within {tolerance})"


def with_orientation(displayed: np.ndarray, orientation: int, fmt: str = "JPEG", **options) -> bytes:
    """Bytes whose pixels, once the EXIF orientation is applied, are `displayed`."""
    stored = np.ascontiguousarray(DISPLAYED[STORED_ORIENTATION[orientation]](displayed))
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = orientation
    return encode(Image.fromarray(stored), fmt, exif=exif.tobytes(), **options)


# ---------------------------------------------------------------- formats


FORMAT_OPTIONS = {
    "JPEG": {"quality": 95, "subsampling": 0},
    "PNG": {},
    "WEBP": {"lossless": True},
    "GIF": {},
    "BMP": {},
    "TIFF": {},
}


@pytest.mark.parametrize("fmt", FORMAT_OPTIONS)
def test_each_format_decodes_to_rgb_with_its_colours(fmt):
    data = encode(quadrants(), fmt, **FORMAT_OPTIONS[fmt])
    image = load_image(data)
    assert image.mode == "RGB", f"{fmt} decoded to {image.mode}"
    assert image.size == (64, 48), f"{fmt} decoded to {image.size}"
    assert_colours(quadrant_colours(image), [RED, GREEN, BLUE, WHITE], 8, fmt)


@pytest.mark.parametrize("fmt", FORMAT_OPTIONS)
def test_is_image_recognises_each_format_from_its_first_bytes(fmt):
    data = encode(quadrants(), fmt, **FORMAT_OPTIONS[fmt])
    assert is_image(data[:SNIFF_BYTES]), f"{fmt} not recognised from its first {SNIFF_BYTES} bytes"
    assert is_image(data), f"{fmt} not recognised from the whole file"


def test_is_image_ignores_names_and_judges_content():
    jpeg = encode(quadrants(), "JPEG")
    png = encode(quadrants(), "PNG")
    # Whatever a file is called, the same bytes decode the same way: PNG bytes are a PNG.
    assert load_image(png).size == load_image(jpeg).size == (64, 48)


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"hello, this is a text file\n",
        b"BMW owners manual, chapter 1: the engine\n",  # "BM" alone is not a bitmap
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
        b"PK\x03\x04\x14\x00\x00\x00\x08\x00",
        b"RIFF\x24\x00\x00\x00WAVEfmt ",  # RIFF, but audio
        b"\xff\xd8",  # too short to be a JPEG
    ],
)
def test_is_image_refuses_what_is_not_an_image(head):
    assert not is_image(head), f"{head!r} taken for an image"


def test_gif_decodes_its_first_frame():
    frames = [Image.new("RGB", (32, 32), colour) for colour in (RED, GREEN, BLUE)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert_colours(load_image(data).getpixel((16, 16)), RED, 0, "first GIF frame")


def test_multipage_tiff_decodes_its_first_page():
    pages = [Image.new("RGB", (32, 32), colour) for colour in (GREEN, BLUE)]
    data = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    assert_colours(load_image(data).getpixel((16, 16)), GREEN, 0, "first TIFF page")


def test_camera_jpeg_with_extra_frames_decodes_its_first_frame_at_reduced_scale():
    frames = [Image.new("RGB", (2000, 1600), colour) for colour in (RED, BLUE)]
    data = encode(frames[0], "MPO", save_all=True, append_images=frames[1:])
    assert Image.open(io.BytesIO(data)).format == "MPO", "the test needs an MPO file"
    image = load_image(data, min_side=224)
    assert image.size == (500, 400)
    assert_colours(image.getpixel((250, 200)), RED, 4, "first MPO frame")


def test_min_side_must_be_positive():
    with pytest.raises(ValueError):
        load_image(encode(quadrants(), "JPEG"), min_side=0)


# ---------------------------------------------------------------- colour modes


def test_rgba_is_composited_over_white():
    half_red = Image.new("RGBA", (16, 16), (255, 0, 0, 128))
    pixel = load_image(encode(half_red, "PNG")).getpixel((8, 8))
    # 128/255 red over 127/255 white: green and blue are 255 * 127/255 = 127.
    assert_colours(pixel, (255, 127, 127), 1, "half-transparent red over white")


def test_fully_transparent_pixels_become_white_not_black():
    image = Image.new("RGBA", (16, 16), (0, 0, 0, 0))
    assert_colours(load_image(encode(image, "PNG")).getpixel((3, 3)), WHITE, 0, "transparent pixel")


def test_la_is_composited_over_white():
    image = Image.new("LA", (16, 16), (0, 64))  # black at 25% opacity
    pixel = load_image(encode(image, "PNG")).getpixel((8, 8))
    assert_colours(pixel, (191, 191, 191), 1, "quarter-opaque black over white")


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_transparency_is_composited_over_white(fmt):
    image = Image.new("P", (16, 16), 1)
    image.putpalette([*RED, *BLUE] + [0, 0, 0] * 254)
    image.paste(0, (0, 0, 8, 16))  # left half palette entry 0 (red, transparent), right half blue
    decoded = load_image(encode(image, fmt, transparency=0))
    assert_colours(decoded.getpixel((2, 8)), WHITE, 0, f"{fmt} transparent palette entry")
    assert_colours(decoded.getpixel((12, 8)), BLUE, 0, f"{fmt} opaque palette entry")


def test_palette_without_transparency_keeps_its_colours():
    image = Image.new("P", (16, 16), 1)
    image.putpalette([*RED, *GREEN] + [0, 0, 0] * 254)
    assert_colours(load_image(encode(image, "PNG")).getpixel((8, 8)), GREEN, 0, "palette entry 1")


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_converts_to_rgb(fmt):
    cyan = Image.new("CMYK", (16, 16), (255, 0, 0, 0))
    decoded = load_image(encode(cyan, fmt))
    assert decoded.mode == "RGB"
    assert_colours(decoded.getpixel((8, 8)), (0, 255, 255), 6, f"{fmt} CMYK cyan")


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_grey_is_scaled_not_clipped(fmt):
    samples = np.array([[0, 257 * 64, 32768, 65535]], np.uint16).repeat(16, 0).repeat(4, 1)
    image = Image.fromarray(samples)
    assert image.mode == "I;16"
    decoded = load_image(encode(image, fmt))
    row = [decoded.getpixel((x, 8)) for x in (1, 5, 9, 13)]
    # Pillow's own I;16 -> L conversion clips everything above 255 to white.
    assert_colours(row, [(0,) * 3, (64,) * 3, (128,) * 3, (255,) * 3], 0, f"{fmt} 16-bit grey")


def test_32_bit_integer_grey_is_read_as_16_bit_samples():
    samples = np.array([[0, 32768, 65535, 70000]], np.int32).repeat(16, 0).repeat(4, 1)
    data = encode(Image.fromarray(samples), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "I", "the test needs a mode I file"
    decoded = load_image(data)
    row = [decoded.getpixel((x, 8))[0] for x in (1, 5, 9, 13)]
    assert row == [0, 128, 255, 255], f"mode I grey read as {row}"


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF"])
def test_one_bit_images_are_black_and_white(fmt):
    image = Image.new("1", (16, 16), 0)
    image.paste(1, (8, 0, 16, 16))
    decoded = load_image(encode(image, fmt))
    assert_colours([decoded.getpixel((2, 8)), decoded.getpixel((12, 8))], [(0, 0, 0), WHITE], 0, fmt)


def test_grey_jpeg_becomes_rgb():
    decoded = load_image(encode(Image.new("L", (16, 16), 200), "JPEG"))
    assert decoded.mode == "RGB"
    assert_colours(decoded.getpixel((8, 8)), (200, 200, 200), 2, "grey JPEG")


def test_ycbcr_converts_to_rgb():
    ycbcr = Image.new("RGB", (16, 16), RED).convert("YCbCr")
    data = encode(ycbcr, "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "YCbCr", "the test needs a YCbCr file"
    assert_colours(load_image(data).getpixel((8, 8)), RED, 4, "YCbCr red")


# ---------------------------------------------------------------- orientation


@pytest.mark.parametrize("orientation", DISPLAYED)
def test_exif_orientation_gives_the_displayed_image(orientation):
    displayed = np.asarray(quadrants(64, 48))
    data = with_orientation(displayed, orientation, quality=95, subsampling=0)
    image = load_image(data)
    assert image.size == (64, 48), f"orientation {orientation} displayed as {image.size}"
    assert_colours(quadrant_colours(image), [RED, GREEN, BLUE, WHITE], 8, f"orientation {orientation}")


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_exif_orientation_applies_beyond_jpeg(fmt):
    displayed = np.asarray(quadrants(64, 48))
    image = load_image(with_orientation(displayed, 6, fmt, **FORMAT_OPTIONS[fmt]))
    assert image.size == (64, 48)
    assert_colours(quadrant_colours(image), [RED, GREEN, BLUE, WHITE], 8, f"{fmt} orientation 6")


def test_crop_box_is_checked_against_the_displayed_size():
    displayed = np.asarray(quadrants(40, 60))  # stored 60 wide, 40 tall, shown upright
    data = with_orientation(displayed, 6)
    assert load_image(data, CropBox(0, 0, 40, 60)).size == (40, 60)
    with pytest.raises(InvalidCropBoxError, match="40x60"):
        load_image(data, CropBox(0, 0, 60, 40))


@pytest.mark.parametrize("orientation", DISPLAYED)
def test_displayed_size_reads_the_header_and_applies_orientation(orientation):
    data = with_orientation(np.asarray(quadrants(64, 48)), orientation)
    assert displayed_size(data) == (64, 48) == load_image(data).size


def test_displayed_size_refuses_what_load_image_refuses():
    with pytest.raises(ImageTooLargeError):
        displayed_size(png_header_only(100_000, 100_000))
    with pytest.raises(NotAnImageError):
        displayed_size(b"GIF89a but not really")
    with pytest.raises(ImageTooSmallError):
        displayed_size(encode(Image.new("RGB", (MIN_IMAGE_SIDE - 1, 40)), "PNG"))


# ---------------------------------------------------------------- draft mode: the key test

BIG_STORED = (4003, 3001)  # odd sides: the last DCT block of each row and column is partial
MARKER_COLOUR = (230, 20, 160)


def big_marked_jpeg(orientation: int, marker: CropBox) -> tuple[bytes, tuple[int, int]]:
    """A 12 MP JPEG whose displayed image is grey with a magenta rectangle at `marker`."""
    width, height = BIG_STORED[::-1] if orientation in (5, 6, 7, 8) else BIG_STORED
    displayed = np.full((height, width, 3), GREY, np.uint8)
    displayed[marker.y0 : marker.y1, marker.x0 : marker.x1] = MARKER_COLOUR
    return with_orientation(displayed, orientation, quality=90), (width, height)


def marker_share(image: Image.Image) -> float:
    pixels = np.asarray(image, int)
    return float((np.abs(pixels - MARKER_COLOUR).max(axis=2) < 40).mean())


@pytest.mark.parametrize("orientation", DISPLAYED)
def test_big_rotated_jpeg_crop_finds_the_marker_at_reduced_scale(orientation):
    # Displayed coordinates, asymmetric in both axes so that any missed flip or turn lands on grey.
    marker = CropBox(1690, 410, 2890, 1410)  # 1200 x 1000, inside both 4003x3001 and 3001x4003
    data, displayed_size = big_marked_jpeg(orientation, marker)
    crop = load_image(data, marker, min_side=224)
    share = marker_share(crop)
    assert share > 0.97, f"orientation {orientation}: only {share:.0%} of the crop is the marker"
    # The shorter side of 1000 needs only 1/4 of it for 224 pixels: decoded at 1/4 scale, the
    # crop is 300x250 rather than 1200x1000, plus at most two pixels of outward rounding (a box
    # edge between block boundaries, a partial block moved to the front by a mirror).
    assert min(crop.size) >= 224, f"orientation {orientation}: crop {crop.size} below the model's 224"
    assert 300 <= crop.size[0] <= 302 and 250 <= crop.size[1] <= 252, f"crop {crop.size} not at 1/4 scale"


@pytest.mark.parametrize("orientation", DISPLAYED)
def test_no_pixel_of_the_box_is_lost_at_reduced_scale(orientation):
    """A one-pixel magenta frame drawn just inside the box must survive into the crop.

    At 1/4 scale each frame line is a quarter of a decoded pixel; on an axis the orientation
    mirrors, the partial last block of the stored image comes first and shifts the blocks, so a
    box mapped without rounding outward loses a decoded row or column, and a third of the frame.
    """
    box = CropBox(1690, 410, 2890, 1410)
    width, height = BIG_STORED[::-1] if orientation in (5, 6, 7, 8) else BIG_STORED
    displayed = np.full((height, width, 3), GREY, np.uint8)
    displayed[box.y0 : box.y1, [box.x0, box.x1 - 1]] = MARKER_COLOUR
    displayed[[box.y0, box.y1 - 1], box.x0 : box.x1] = MARKER_COLOUR
    data = with_orientation(displayed, orientation, quality=90)
    whole = load_image(data, min_side=400)  # 3001 // 400 = 7: decoded at 1/4, as the crop is
    crop = load_image(data, box, min_side=224)
    assert whole.size == tuple(-(-side // 4) for side in (width, height)), "the comparison needs 1/4 scale"

    def frame_ink(image: Image.Image) -> float:
        return float(np.abs(np.asarray(image, float) - GREY).sum())

    kept = frame_ink(crop) / frame_ink(whole)
    assert kept > 0.9, f"orientation {orientation}: the crop kept {kept:.0%} of the box's frame"


@pytest.mark.parametrize("min_side", [224, 260, 400, 800, 1600, 3001])
def test_draft_scale_is_the_smallest_that_keeps_min_side(min_side):
    data, displayed_size = big_marked_jpeg(6, CropBox(0, 0, 8, 8))
    shorter = min(load_image(data, min_side=min_side).size)
    assert shorter >= min_side, f"min_side {min_side}: decoded only {shorter} pixels on the shorter side"
    one_eighth = -(-min(displayed_size) // 8)
    assert shorter < 2 * min_side or shorter == one_eighth, f"min_side {min_side}: {shorter} is more than needed"


@pytest.mark.parametrize("orientation", [1, 6, 8])
def test_draft_mode_reduces_a_whole_big_jpeg_but_not_below_min_side(orientation):
    data, displayed_size = big_marked_jpeg(orientation, CropBox(0, 0, 8, 8))
    reduced = load_image(data, min_side=224)
    expected = tuple((side + 7) // 8 for side in displayed_size)  # 1/8: 3001 // 8 = 375 >= 224
    assert reduced.size == expected, f"orientation {orientation}: decoded {reduced.size}, expected {expected}"
    assert min(reduced.size) >= 224
    assert load_image(data).size == displayed_size, "without min_side the image is decoded in full"


@pytest.mark.parametrize(
    "box",
    [
        CropBox(100, 100, 2100, 330),  # long and thin: its 230-pixel side allows no reduction
        CropBox(2500, 100, 2980, 3900),  # tall: 480 wide allows 1/2
        CropBox(0, 0, 3001, 4003),  # the whole image
        CropBox(1000, 1000, 1100, 1100),  # smaller than the model: kept at full resolution
    ],
)
@pytest.mark.parametrize("orientation", [6, 8])
def test_crops_keep_min_side_pixels_where_the_original_had_them(box, orientation):
    data, displayed_size = big_marked_jpeg(orientation, CropBox(0, 0, 8, 8))
    assert displayed_size == (3001, 4003)
    crop = load_image(data, box, min_side=224)
    needed = min(224, box.width, box.height)
    assert min(crop.size) >= needed, f"crop of {box} decoded to {crop.size}, fewer than {needed} pixels"
    # The aspect ratio survives the mapping (within the outward rounding).
    assert abs(crop.size[0] / crop.size[1] - box.width / box.height) < 0.02 * box.width / box.height + 0.02


# ---------------------------------------------------------------- refusals


def test_a_bomb_header_is_refused_before_decoding():
    with pytest.raises(ImageTooLargeError) as raised:
        load_image(png_header_only(100_000, 100_000))
    assert raised.value.status == 413


def test_our_pixel_limit_holds_below_pillows_and_whatever_pillow_is_set_to(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    width, height = 8000, MAX_PIXELS // 8000 + 1
    with pytest.raises(ImageTooLargeError, match=f"{width}x{height}"):
        load_image(png_header_only(width, height))


def test_pillows_bomb_warning_raised_as_an_error_is_still_too_large():
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(ImageTooLargeError):
            load_image(png_header_only(10_000, 10_000))  # 100 MP: Pillow warns, not raises


def test_the_limit_itself_is_allowed_through_to_decoding():
    # Exactly MAX_PIXELS passes the size check and only then fails for having no pixel data.
    with pytest.raises(NotAnImageError):
        load_image(png_header_only(10_000, MAX_PIXELS // 10_000))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_images_are_not_images(fmt):
    data = encode(Image.effect_noise((256, 256), 50).convert("RGB"), fmt)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False, "someone let Pillow accept truncated images"
    for length in (len(data) // 2, len(data) - 100):
        with pytest.raises(NotAnImageError, match="could not be decoded") as raised:
            load_image(data[:length])
        assert raised.value.status == 415


def test_truncated_jpeg_is_refused_with_draft_mode_and_a_crop_too():
    data = encode(Image.effect_noise((2000, 1500), 50).convert("RGB"), "JPEG")
    with pytest.raises(NotAnImageError):
        load_image(data[: len(data) // 2], CropBox(0, 0, 1000, 1000), min_side=64)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        np.random.default_rng(0).bytes(4096),
        b"\xff\xd8\xff\xe0" + np.random.default_rng(1).bytes(4096),  # JPEG magic, garbage after
        b"name,colour\nrose,red\n" * 50,
        encode(quadrants(), "PPM"),  # Pillow decodes it; we do not accept it
        encode(quadrants(), "ICO"),
    ],
    ids=["empty", "random", "jpeg-magic-then-garbage", "text", "ppm", "ico"],
)
def test_what_is_not_a_supported_image_is_refused(data):
    with pytest.raises(NotAnImageError) as raised:
        load_image(data)
    assert raised.value.status == 415
    if data[:3] != b"\xff\xd8\xff":
        assert "empty" in str(raised.value) or "not a JPEG, PNG, WebP, GIF, BMP or TIFF" in str(raised.value)


@pytest.mark.parametrize("size", [(MIN_IMAGE_SIDE - 1, 100), (100, MIN_IMAGE_SIDE - 1), (1, 1)])
def test_tiny_images_are_refused(size):
    with pytest.raises(ImageTooSmallError, match=f"at least {MIN_IMAGE_SIDE}") as raised:
        load_image(encode(Image.new("RGB", size, RED), "PNG"))
    assert raised.value.status == 422


def test_the_smallest_allowed_image_loads():
    assert load_image(encode(Image.new("RGB", (MIN_IMAGE_SIDE,) * 2, RED), "PNG")).size == (8, 8)


def test_errors_are_lookalike_errors_with_statuses():
    for error in (NotAnImageError, ImageTooLargeError, ImageTooSmallError, InvalidCropBoxError):
        assert issubclass(error, LookalikeError)
    assert (ImageTooSmallError.status, InvalidCropBoxError.status) == (422, 422)


# ---------------------------------------------------------------- crop boxes

IMAGE_640x480 = encode(quadrants(640, 480), "PNG")


def test_crop_is_half_open_in_displayed_pixels():
    crop = load_image(IMAGE_640x480, CropBox(300, 220, 340, 260))
    assert crop.size == (40, 40)
    assert crop.getpixel((0, 0)) == RED and crop.getpixel((39, 0)) == GREEN
    assert crop.getpixel((0, 39)) == BLUE and crop.getpixel((39, 39)) == WHITE


def test_crop_reaching_the_far_edges_is_inside():
    assert load_image(IMAGE_640x480, CropBox(0, 0, 640, 480)).size == (640, 480)


@pytest.mark.parametrize("box", [(600, 0, 641, 100), (0, 400, 100, 481), (700, 700, 800, 800)])
def test_crop_outside_the_image_is_refused_naming_its_size(box):
    with pytest.raises(InvalidCropBoxError, match="640x480") as raised:
        load_image(IMAGE_640x480, CropBox(*box))
    assert raised.value.status == 422


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ((10, 10, 10, 50), "empty"),
        ((10, 10, 50, 10), "empty"),
        ((50, 10, 10, 50), "inverted"),
        ((10, 50, 50, 10), "inverted"),
        ((10, 10, 10 + MIN_BOX_SIDE - 1, 50), f"at least {MIN_BOX_SIDE}"),
        ((10, 10, 50, 10 + MIN_BOX_SIDE - 1), f"at least {MIN_BOX_SIDE}"),
        ((-1, 0, 20, 20), "negative"),
        ((0.0, 0, 20, 20), "integers"),
    ],
)
def test_malformed_boxes_are_refused(box, message):
    with pytest.raises(InvalidCropBoxError, match=message):
        CropBox(*box)


def test_smallest_box_is_allowed():
    assert load_image(IMAGE_640x480, CropBox(0, 0, MIN_BOX_SIDE, MIN_BOX_SIDE)).size == (8, 8)


@pytest.mark.parametrize(
    "value",
    ["10,20,110,220", " 10 , 20,110 ,220 ", [10, 20, 110, 220], (10, 20, 110, 220), np.array([10, 20, 110, 220]),
     [10.0, 20, 110.0, 220], "10,20.0,110,220"],
)
def test_parse_accepts_strings_and_sequences_of_whole_numbers(value):
    box = CropBox.parse(value)
    assert box == CropBox(10, 20, 110, 220)
    assert all(type(corner) is int for corner in (box.x0, box.y0, box.x1, box.y1))


@pytest.mark.parametrize(
    "value",
    ["", "10,20,110", "10,20,110,220,5", "a,b,c,d", "10,20,110.5,220", "10;20;110;220", "-10,20,110,220",
     "10,20,inf,220", "10,20,nan,220", [10, 20, 110], [10, 20, 110.5, 220], [True, 0, 100, 100],
     ["10", "x", "110", "220"], None, 42, b"\x0a\x14\x6e\xdc", {"x0": 10}, "20,20,10,10", "0,0,5,5"],
)
def test_parse_refuses_everything_else(value):
    with pytest.raises(InvalidCropBoxError):
        CropBox.parse(value)


# ---------------------------------------------------------------- to_tensor

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def test_tensor_shape_dtype_and_layout():
    tensor = to_tensor(quadrants(640, 480), 224, MEAN, STD)
    assert tensor.shape == (3, 224, 224)
    assert tensor.dtype == np.float32
    assert tensor.flags.c_contiguous


def test_normalization_arithmetic():
    colour = (10, 128, 250)
    tensor = to_tensor(Image.new("RGB", (32, 32), colour), 16, MEAN, STD)
    for channel in range(3):
        expected = (colour[channel] / 255 - MEAN[channel]) / STD[channel]
        np.testing.assert_allclose(tensor[channel], expected, rtol=1e-5, err_msg=f"channel {channel}")


def test_channels_first_and_rows_are_y():
    tensor = to_tensor(quadrants(64, 48), 64, (0, 0, 0), (1, 1, 1))
    image = quadrants(64, 48).resize((64, 64), Image.Resampling.BICUBIC)
    np.testing.assert_allclose(tensor, np.asarray(image).transpose(2, 0, 1) / 255, atol=1e-6)
    # Top-left is red: channel 0 high, channel 2 low; bottom-left is blue.
    assert tensor[0, 5, 5] > 0.99 and tensor[2, 5, 5] < 0.01
    assert tensor[2, 60, 5] > 0.99 and tensor[0, 60, 5] < 0.01


def test_squash_keeps_everything_and_center_crop_keeps_the_middle():
    thirds = np.zeros((100, 300, 3), np.uint8)
    thirds[:, :100], thirds[:, 100:200], thirds[:, 200:] = RED, GREEN, BLUE
    image = Image.fromarray(thirds)
    squashed = to_tensor(image, 60, (0, 0, 0), (1, 1, 1))
    assert squashed[0, 30, 5] > 0.99 and squashed[1, 30, 30] > 0.99 and squashed[2, 30, 55] > 0.99
    cropped = to_tensor(image, 60, (0, 0, 0), (1, 1, 1), resize="center-crop")
    # Away from the edges, where bicubic support reaches one pixel into the neighbouring thirds.
    assert cropped[1, :, 2:-2].min() > 0.99, "center-crop reached beyond the green middle third"
    assert cropped[0, :, 2:-2].max() < 0.01 and cropped[2, :, 2:-2].max() < 0.01


@pytest.mark.parametrize(
    "arguments",
    [
        {"image": Image.new("L", (8, 8)), "size": 8, "mean": MEAN, "std": STD},
        {"image": Image.new("RGB", (8, 8)), "size": 0, "mean": MEAN, "std": STD},
        {"image": Image.new("RGB", (8, 8)), "size": 8, "mean": MEAN[:2], "std": STD},
        {"image": Image.new("RGB", (8, 8)), "size": 8, "mean": MEAN, "std": (0.2, 0.0, 0.2)},
        {"image": Image.new("RGB", (8, 8)), "size": 8, "mean": MEAN, "std": STD, "resize": "letterbox"},
    ],
)
def test_to_tensor_refuses_bad_arguments(arguments):
    with pytest.raises(ValueError):
        to_tensor(**arguments)


def test_decode_errors_do_not_leak_object_addresses():
    with pytest.raises(NotAnImageError) as error:
        load_image(b"\xff\xd8\xff" + b"junk" * 50)
    assert "0x" not in str(error.value) and "BytesIO" not in str(error.value)


# ---------------------------------------------------------------- the full-decode budget


@pytest.mark.parametrize("size", [(8, 6_000_000), (7000, 7000), (FULL_DECODE_PIXELS // 8 + 1, 8)])
def test_a_format_decoded_in_full_is_refused_above_the_budget_from_its_header(size):
    with pytest.raises(ImageTooLargeError, match=f"up to {FULL_DECODE_PIXELS:,} pixels") as raised:
        load_image(png_header_only(*size), full_decode_pixels=FULL_DECODE_PIXELS)
    assert raised.value.status == 413


def test_the_budget_itself_is_allowed_through_to_decoding():
    width = 4000
    with pytest.raises(NotAnImageError):
        load_image(png_header_only(width, FULL_DECODE_PIXELS // width), full_decode_pixels=FULL_DECODE_PIXELS)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "WEBP", "GIF", "BMP"])
def test_every_format_without_reduced_decoding_is_held_to_the_budget(fmt):
    data = encode(Image.new("RGB", (64, 64), RED), fmt)
    assert load_image(data, full_decode_pixels=64 * 64).size == (64, 64)
    with pytest.raises(ImageTooLargeError, match=fmt):
        load_image(data, full_decode_pixels=64 * 64 - 1)


def test_jpegs_keep_reduced_decoding_above_the_budget():
    data = encode(Image.new("RGB", (640, 480), RED), "JPEG")
    assert load_image(data, min_side=80, full_decode_pixels=100).size == (160, 120)


def test_without_a_budget_the_pixel_limit_alone_applies():
    assert load_image(encode(Image.new("RGB", (64, 64), RED), "PNG")).size == (64, 64)
