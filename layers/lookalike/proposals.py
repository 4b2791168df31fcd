"""Suggested fragments: object boxes read off the embedder's activation map, no detector needed.

No object detector ships in any package we can install, but the embedding network already knows
where the picture holds something: its last feature map fires on objects and stays quiet on
walls, floors and sky. The model exports that map (GeM across channels, 7x7 over the squashed
input; model_export.export_onnx), and this module turns it into boxes:

1. resize the map bilinearly to GRID x GRID cells over the image and scale it to [0, 1];
2. at each of LEVELS, the cells at or above the level form 4-connected regions; each region's
   bounding box is a candidate (low levels give whole objects or groups, high levels the parts
   that fire most, so objects of several sizes and several objects per image all get a box);
3. a candidate's score is the share of the map's total activation inside its box;
4. candidates are taken best first, skipping one whose IoU with a box already taken is at least
   NMS_IOU, up to MAX_PROPOSALS.

The constants were tuned on Tiny ImageNet training boxes and measured once on its validation
boxes by `python -m lab.bench.proposals` (docs/FRAGMENTS.md has the figures). Boxes are half-open,
in pixels of the image the map was computed from, and always valid crop boxes.
"""

from dataclasses import dataclass

import numpy as np

from lookalike.embedding import Embedder
from lookalike.images import FULL_DECODE_PIXELS, MIN_BOX_SIDE, CropBox, displayed_size, load_image

MAX_PROPOSALS = 5
GRID = 28
LEVELS = (0.2, 0.35, 0.5, 0.65, 0.8, 0.9)
NMS_IOU = 0.6


@dataclass(frozen=True)
class Proposal:
    box: CropBox
    score: float  # share of the image's activation inside the box, in (0, 1]


@dataclass(frozen=True)
class Proposals:
    """What `POST /proposals` answers: the displayed image's size and its boxes, best first."""

    width: int
    height: int
    proposals: list[Proposal]


def propose(
    activation: np.ndarray,
    width: int,
    height: int,
    limit: int = MAX_PROPOSALS,
    *,
    levels: tuple[float, ...] = LEVELS,
    nms_iou: float = NMS_IOU,
    max_area: float = 1.0,
) -> list[Proposal]:
    """Up to `limit` boxes for a `width` x `height` image from its (h, w) activation map.

    `max_area` drops candidates covering more than that fraction of the image (indexing skips
    boxes the whole-image vector already describes). A flat map proposes nothing.
    """
    if activation.ndim != 2:
        raise ValueError(f"an activation map is 2-d (h, w), got shape {activation.shape}")
    if min(width, height) < MIN_BOX_SIDE:
        raise ValueError(f"a {width}x{height} image is too small for a {MIN_BOX_SIDE}-pixel box")
    grid = _resize_bilinear(np.asarray(activation, dtype=np.float64), GRID)
    low, high = grid.min(), grid.max()
    if not np.isfinite(grid).all() or high - low <= 1e-9 * max(abs(high), 1.0):
        return []
    grid = (grid - low) / (high - low)
    cumulative = np.pad(grid.cumsum(axis=0).cumsum(axis=1), ((1, 0), (1, 0)))
    total = cumulative[-1, -1]
    candidates: list[tuple[float, tuple[int, int, int, int]]] = []
    for level in levels:
        for y0, x0, y1, x1 in _region_bounds(grid >= level):
            if (y1 - y0) * (x1 - x0) > max_area * GRID * GRID:
                continue
            mass = cumulative[y1, x1] - cumulative[y0, x1] - cumulative[y1, x0] + cumulative[y0, x0]
            candidates.append((mass / total, (x0, y0, x1, y1)))
    candidates.sort(key=lambda candidate: -candidate[0])
    taken: list[Proposal] = []
    for score, cells in candidates:
        if len(taken) == limit:
            break
        box = _pixel_box(cells, width, height)
        if all(iou(box, other.box) < nms_iou for other in taken):
            taken.append(Proposal(box, round(float(score), 4)))
    return taken


def iou(a: tuple[int, int, int, int] | CropBox, b: tuple[int, int, int, int] | CropBox) -> float:
    """Intersection over union of two half-open boxes (x0, y0, x1, y1)."""
    ax0, ay0, ax1, ay1 = _corners(a)
    bx0, by0, bx1, by1 = _corners(b)
    inter = max(0, min(ax1, bx1) - max(ax0, bx0)) * max(0, min(ay1, by1) - max(ay0, by0))
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return inter / union if union > 0 else 0.0


class Proposer:
    """Suggested fragments for query images; safe to share between threads (the embedder is)."""

    def __init__(self, embedder: Embedder, limit: int = MAX_PROPOSALS) -> None:
        if not embedder.has_activation_maps:
            raise ValueError("the model has no activation output: rebuild it with `python -m model_export.export_onnx`")
        self.embedder = embedder
        self.limit = limit

    def propose(self, data: bytes, full_decode_pixels: int = FULL_DECODE_PIXELS) -> Proposals:
        """Boxes in pixels of the image as displayed at full resolution, the only coordinates the
        page and `box` speak; the pixels are decoded at the reduced size the model needs, since
        the activation map is 7x7 whatever the size (a third of the time on 5.5 MP photos:
        `python -m lab bench proposal_latency`, docs/FRAGMENTS.md)."""
        width, height = displayed_size(data, full_decode_pixels)
        image = load_image(data, min_side=self.embedder.info.input_size, full_decode_pixels=full_decode_pixels)
        (activation,) = self.embedder.activation_maps([image])
        return Proposals(width, height, propose(activation, width, height, self.limit))


def _corners(box: tuple[int, int, int, int] | CropBox) -> tuple[int, int, int, int]:
    return (box.x0, box.y0, box.x1, box.y1) if isinstance(box, CropBox) else box


def _resize_bilinear(values: np.ndarray, size: int) -> np.ndarray:
    """(h, w) -> (size, size), sampling at cell centres as the map's cells tile the image."""
    rows = _sample_positions(values.shape[0], size)
    columns = _sample_positions(values.shape[1], size)
    resized = _interpolate(values, rows, axis=0)
    return _interpolate(resized, columns, axis=1)


def _sample_positions(cells: int, size: int) -> np.ndarray:
    return np.clip((np.arange(size) + 0.5) * cells / size - 0.5, 0, cells - 1)


def _interpolate(values: np.ndarray, positions: np.ndarray, axis: int) -> np.ndarray:
    below = np.floor(positions).astype(int)
    above = np.minimum(below + 1, values.shape[axis] - 1)
    weight = positions - below
    shape = [1, 1]
    shape[axis] = len(positions)
    weight = weight.reshape(shape)
    return np.take(values, below, axis=axis) * (1 - weight) + np.take(values, above, axis=axis) * weight


def _region_bounds(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Half-open bounds (y0, x0, y1, x1) of each 4-connected region of True cells."""
    seen = np.zeros_like(mask)
    height, width = mask.shape
    bounds = []
    for start_y, start_x in zip(*np.nonzero(mask)):
        if seen[start_y, start_x]:
            continue
        seen[start_y, start_x] = True
        stack = [(start_y, start_x)]
        y0, x0, y1, x1 = start_y, start_x, start_y, start_x
        while stack:
            y, x = stack.pop()
            y0, x0, y1, x1 = min(y0, y), min(x0, x), max(y1, y), max(x1, x)
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < height and 0 <= nx < width and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        bounds.append((int(y0), int(x0), int(y1) + 1, int(x1) + 1))
    return bounds


def _pixel_box(cells: tuple[int, int, int, int], width: int, height: int) -> CropBox:
    """Grid cells -> pixels, rounded outward, widened to MIN_BOX_SIDE where a side is shorter."""
    x0, y0, x1, y1 = cells
    left, right = _span(x0 * width / GRID, x1 * width / GRID, width)
    top, bottom = _span(y0 * height / GRID, y1 * height / GRID, height)
    return CropBox(left, top, right, bottom)


def _span(start: float, stop: float, length: int) -> tuple[int, int]:
    low, high = int(np.floor(start)), min(length, int(np.ceil(stop)))
    missing = MIN_BOX_SIDE - (high - low)
    if missing > 0:
        low = max(0, low - (missing + 1) // 2)
        high = min(length, low + MIN_BOX_SIDE)
        low = high - MIN_BOX_SIDE
    return low, high
