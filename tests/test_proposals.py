"""Suggested fragments: box geometry on synthetic activation maps, the model's activation output,
and proposals on real photos pasted onto plain backgrounds, as bytes a client would send."""

import numpy as np
import pytest
from PIL import Image

from lookalike.errors import ImageTooLargeError
from lookalike.images import FULL_DECODE_PIXELS, MIN_BOX_SIDE, CropBox, load_image
from lookalike import proposals
from lookalike.proposals import MAX_PROPOSALS, NMS_IOU, Proposer, iou, propose
from tests.support.photos import encode, photo, png_header_only


def blob_map(*centres: tuple[float, float], size: int = 7, spread: float = 0.6) -> np.ndarray:
    """A (size, size) map with a Gaussian bump at each (row, column) centre, over a weak floor."""
    rows, columns = np.mgrid[0:size, 0:size]
    bumps = [np.exp(-((rows - r) ** 2 + (columns - c) ** 2) / (2 * spread**2)) for r, c in centres]
    return (0.1 + np.sum(bumps, axis=0)).astype(np.float32)


def corners(box: CropBox) -> tuple[int, int, int, int]:
    return box.x0, box.y0, box.x1, box.y1


# -- geometry on synthetic maps ------------------------------------------------------------------


def test_one_bump_gives_a_box_around_it_in_image_pixels():
    width, height = 700, 350  # not square: the map is stretched over the image as the model squashes it
    proposals = propose(blob_map((1, 5)), width, height)
    assert proposals, "a map with a clear bump proposes nothing"
    best = proposals[0].box
    centre_x, centre_y = (best.x0 + best.x1) / 2, (best.y0 + best.y1) / 2
    assert centre_x == pytest.approx(5.5 / 7 * width, abs=width / 7)
    assert centre_y == pytest.approx(1.5 / 7 * height, abs=height / 7)
    assert best.width < width / 2 and best.height < height / 2


def test_two_bumps_get_a_box_each():
    proposals = propose(blob_map((1, 1), (5, 5)), 560, 560, levels=(0.5,))
    boxes = [corners(p.box) for p in proposals]
    assert len(boxes) == 2
    assert any(box[2] <= 280 and box[3] <= 280 for box in boxes), f"no box in the top-left quadrant: {boxes}"
    assert any(box[0] >= 280 and box[1] >= 280 for box in boxes), f"no box in the bottom-right quadrant: {boxes}"


def test_boxes_are_valid_crop_boxes_inside_the_image_best_first_and_not_overlapping():
    rng = np.random.default_rng(0)
    for width, height in [(64, 64), (1920, 1080), (8, 8), (9, 300), (4000, 12)]:
        for _ in range(20):
            proposals = propose(rng.random((7, 7)).astype(np.float32), width, height)
            assert len(proposals) <= MAX_PROPOSALS
            scores = [p.score for p in proposals]
            assert scores == sorted(scores, reverse=True)
            for p in proposals:
                assert isinstance(p.box, CropBox)
                assert 0 <= p.box.x0 < p.box.x1 <= width and 0 <= p.box.y0 < p.box.y1 <= height
                assert p.box.width >= MIN_BOX_SIDE and p.box.height >= MIN_BOX_SIDE
            overlaps = [iou(a.box, b.box) for i, a in enumerate(proposals) for b in proposals[i + 1 :]]
            assert all(overlap < NMS_IOU for overlap in overlaps)


def test_limit_and_max_area():
    busy = blob_map((1, 1), (1, 5), (5, 1), (5, 5), (3, 3))
    assert len(propose(busy, 700, 700, limit=2)) == 2
    for p in propose(busy, 700, 700, max_area=0.2):
        assert p.box.width * p.box.height <= 0.2 * 700 * 700 * 1.1  # rounded outward to whole pixels


def test_a_flat_map_proposes_nothing_and_bad_input_is_refused():
    assert propose(np.full((7, 7), 0.3, dtype=np.float32), 100, 100) == []
    with pytest.raises(ValueError, match="2-d"):
        propose(np.zeros((1, 7, 7)), 100, 100)


def test_iou_of_half_open_boxes():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching, not overlapping
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou(CropBox(0, 0, 10, 10), (0, 0, 20, 10)) == 0.5


# -- the model's activation output --------------------------------------------------------------


def test_the_model_has_an_activation_output(embedder):
    images = [photo("chelsea"), photo("coffee").resize((300, 200))]
    vectors, maps = embedder.embed_images_with_maps(images)
    assert embedder.has_activation_maps
    assert maps.shape == (2, 7, 7) and maps.dtype == np.float32 and (maps >= 0).all()
    np.testing.assert_array_equal(vectors, embedder.embed_images(images))  # the same pass, the same vectors
    np.testing.assert_array_equal(maps, embedder.activation_maps(images))
    assert embedder.activation_maps([]).shape == (0, 7, 7)


# -- real photos on plain backgrounds -------------------------------------------------------------


def pasted(name: str, background: tuple[int, int, int], at: tuple[int, int], size=(640, 480)):
    """A photo, reduced to about a sixth of the canvas, pasted onto a plain canvas; and its box."""
    obj = photo(name)
    obj.thumbnail((size[0] // 3, size[1] // 3 + 40))
    canvas = Image.new("RGB", size, background)
    canvas.paste(obj, at)
    return canvas, (at[0], at[1], at[0] + obj.width, at[1] + obj.height)


@pytest.fixture(scope="module")
def proposer(embedder):
    return Proposer(embedder)


@pytest.mark.parametrize(
    ("name", "background", "at"),
    [
        ("chelsea", (255, 255, 255), (380, 240)),
        ("coffee", (128, 128, 128), (40, 60)),
        ("rocket", (240, 235, 220), (220, 300)),
        ("motorcycle", (30, 30, 30), (400, 20)),
    ],
)
def test_a_proposal_lands_on_an_object_pasted_onto_a_plain_background(proposer, name, background, at):
    canvas, truth = pasted(name, background, at)
    found = proposer.propose(encode(canvas, quality=92))
    assert (found.width, found.height) == canvas.size
    overlaps = [round(iou(p.box, truth), 2) for p in found.proposals]
    assert max(overlaps[:3]) >= 0.5, f"{name}: no top-3 box on the object {truth}: IoUs {overlaps}"


def test_boxes_are_in_displayed_pixels_of_a_rotated_jpeg(proposer):
    """Stored sideways with EXIF orientation 6, displayed upright: boxes use the upright pixels."""
    canvas, truth = pasted("chelsea", (255, 255, 255), (380, 240))
    stored = canvas.transpose(Image.Transpose.ROTATE_90)  # orientation 6 turns it back clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    found = proposer.propose(encode(stored, quality=92, exif=exif.tobytes()))
    assert (found.width, found.height) == canvas.size
    assert max(iou(p.box, truth) for p in found.proposals[:3]) >= 0.5


def test_a_big_photo_is_decoded_reduced_and_boxes_stay_in_full_resolution_pixels(proposer, embedder, monkeypatch):
    canvas, (x0, y0, x1, y1) = pasted("chelsea", (255, 255, 255), (380, 240))
    big = canvas.resize((canvas.width * 5, canvas.height * 5))  # a 3200x2400 (7.7 MP) photo
    truth = (x0 * 5, y0 * 5, x1 * 5, y1 * 5)
    data = encode(big, quality=92)
    decoded = []

    def recording_load(*args, **kwargs):
        decoded.append(load_image(*args, **kwargs).size)
        return load_image(*args, **kwargs)

    monkeypatch.setattr(proposals, "load_image", recording_load)
    found = proposer.propose(data)
    assert decoded and max(decoded[0]) <= 800, f"decoded at {decoded}: not reduced (1/4 of 3200x2400 is 800x600)"
    assert (found.width, found.height) == big.size
    assert max(iou(p.box, truth) for p in found.proposals[:3]) >= 0.5
    (full_map,) = embedder.activation_maps([load_image(data)])  # what a full-size decode proposes
    full = propose(full_map, *big.size)
    assert iou(found.proposals[0].box, full[0].box) >= 0.8, "the reduced decode moved the best box"


def test_an_image_over_the_full_decode_budget_gets_no_proposals_but_a_413(proposer):
    with pytest.raises(ImageTooLargeError, match=f"up to {FULL_DECODE_PIXELS:,} pixels"):
        proposer.propose(png_header_only(7000, 7000))
