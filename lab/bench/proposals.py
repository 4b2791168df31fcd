"""How often a suggested fragment is the annotated object: Tiny ImageNet boxes, recall at IoU >= 0.5.

    python -m lab bench proposals                  # training boxes: baselines and lookalike.proposals' defaults
    python -m lab bench proposals --tune           # ... plus the grid of settings the defaults were chosen from
    python -m lab bench proposals --validation     # the validation figure: run it once, after tuning

Each image
has one annotated object box; a proposal list finds it when one of its first 3 boxes overlaps it
with IoU >= 0.5. Maps come from the product's own path (load_image, the ONNX model's activation
output); the training images are the first --per-class of each of the 200 classes whose boxes
the tar holds, the validation images all 10,100 (--limit for fewer).

Baselines, which know nothing about the image: the whole image; one centred box of the side
fraction that does best on the training boxes; and three centred boxes likewise, the fair
comparison for a top-3 figure.

Tiny ImageNet objects mostly fill their 64x64 frame, unlike a lamp in a room, so the same
figures are also given for objects pasted small into real scenes (lab.composites: 10-30% of
the area; training image number --per-class of each class for tuning, the first 500 validation
images for the validation figure); the pasted box is the truth there.
"""

import itertools
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lab.bench import argument_parser
from lab.composites import composites
from lookalike.paths import default_model_path
from lab.datasets import TINY_IMAGENET_TRAIN, TINY_IMAGENET_VAL, tiny_imagenet_train, tiny_imagenet_val
from lookalike.embedding import Embedder
from lookalike.images import load_image
from lookalike.proposals import LEVELS, NMS_IOU, iou, propose

TOP = 3
HIT_IOU = 0.5
CENTRE_SIDES = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
BATCH = 64
TUNING_LEVELS = (
    (0.3, 0.5, 0.7),
    (0.2, 0.35, 0.5, 0.65, 0.8),
    (0.2, 0.35, 0.5, 0.65, 0.8, 0.9),
    (0.1, 0.25, 0.4, 0.55, 0.7, 0.85),
)
TUNING_NMS = (0.4, 0.5, 0.6, 0.7)
VAL_COMPOSITES = 500
TRAIN_SEED, VAL_SEED = 1, 2


def activation_maps(
    embedder: Embedder, payloads: list[bytes], desc: str
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    maps, sizes = [], []
    for start in tqdm(range(0, len(payloads), BATCH), desc=desc, unit="batch", file=sys.stderr):
        images = [load_image(data) for data in payloads[start : start + BATCH]]
        maps.append(embedder.activation_maps(images))
        sizes += [image.size for image in images]
    return np.concatenate(maps), sizes


def recall(boxes_per_image: list[list[tuple[int, int, int, int]]], truths: list[tuple[int, int, int, int]]) -> float:
    hits = [any(iou(box, truth) >= HIT_IOU for box in boxes[:TOP]) for boxes, truth in zip(boxes_per_image, truths)]
    return float(np.mean(hits))


def centre_box(width: int, height: int, side: float) -> tuple[int, int, int, int]:
    x0, y0 = round(width * (1 - side) / 2), round(height * (1 - side) / 2)
    return x0, y0, width - x0, height - y0


def proposal_boxes(maps: np.ndarray, sizes: list[tuple[int, int]], **settings) -> list[list[tuple[int, int, int, int]]]:
    return [
        [(p.box.x0, p.box.y0, p.box.x1, p.box.y1) for p in propose(activation, width, height, TOP, **settings)]
        for activation, (width, height) in zip(maps, sizes)
    ]


def best_centre_sides(sizes, truths, count: int) -> tuple[float, ...]:
    """The `count` centred side fractions that find the most training boxes together."""
    scored = []
    for sides in itertools.combinations(CENTRE_SIDES, count):
        boxes = [[centre_box(w, h, side) for side in sides] for w, h in sizes]
        scored.append((recall(boxes, truths), sides))
    return max(scored)[1]


def report(name: str, maps, sizes, truths, one_side: float, three_sides: tuple[float, ...]) -> None:
    areas = np.array([(x1 - x0) * (y1 - y0) / (w * h) for (x0, y0, x1, y1), (w, h) in zip(truths, sizes)])
    rows = {
        "whole image": [[(0, 0, w, h)] for w, h in sizes],
        f"centre box (side {one_side:g})": [[centre_box(w, h, one_side)] for w, h in sizes],
        f"3 centre boxes (sides {', '.join(f'{s:g}' for s in three_sides)})": [
            [centre_box(w, h, s) for s in three_sides] for w, h in sizes
        ],
        "lookalike.proposals (defaults)": proposal_boxes(maps, sizes),
    }
    print(f"\n{name}: {len(truths)} images, recall of the annotated box at IoU >= {HIT_IOU} among the top {TOP}")
    bands = [(0, 0.1), (0.1, 0.25), (0.25, 0.5), (0.5, 0.8), (0.8, 1.01)]
    header = "".join(f"  {f'{lo:g}-{min(hi, 1):g}':>8}" for lo, hi in bands)
    print(f"  {'method':<44} {'all':>6}   by box area:{header}")
    counts = "".join(f"  {((areas >= lo) & (areas < hi)).sum():>8}" for lo, hi in bands)
    print(f"  {'(images per band)':<44} {'':>6}   {'':12}" + counts)
    for method, boxes in rows.items():
        hits = np.array([any(iou(b, t) >= HIT_IOU for b in bs[:TOP]) for bs, t in zip(boxes, truths)])
        by_band = "".join(f"  {_share(hits[(areas >= lo) & (areas < hi)]):>8}" for lo, hi in bands)
        print(f"  {method:<44} {hits.mean():>6.1%}   {'':12}{by_band}")


def _share(hits: np.ndarray) -> str:
    return f"{hits.mean():.1%}" if len(hits) else "-"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argument_parser(__file__, __doc__)
    parser.add_argument("--per-class", type=int, default=20, help="training images per class (default 20: 4,020)")
    parser.add_argument("--tune", action="store_true", help="also print the grid of settings on the training boxes")
    parser.add_argument("--validation", action="store_true", help="also measure the validation boxes (report once)")
    parser.add_argument("--limit", type=int, default=None, help="validation images (default all 10,100)")
    parser.add_argument("--model", type=Path, default=None, help=f"ONNX embedder (default {default_model_path()})")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    embedder = Embedder(args.model or default_model_path())

    train, pasted = [], []
    for number, image in tiny_imagenet_train(TINY_IMAGENET_TRAIN, per_class=args.per_class + 1):
        if image.box is not None:  # two classes of the tar come without their boxes file
            (pasted if number == args.per_class else train).append(image)
    train_maps, train_sizes = activation_maps(embedder, [image.data for image in train], "training maps")
    train_truths = [image.box for image in train]
    one_side = best_centre_sides(train_sizes, train_truths, 1)[0]
    three_sides = best_centre_sides(train_sizes, train_truths, 3)
    report("training", train_maps, train_sizes, train_truths, one_side, three_sides)
    train_composites = composites([image.data for image in pasted], seed=TRAIN_SEED)
    composite_maps, composite_sizes = activation_maps(embedder, [c.data for c in train_composites], "composite maps")
    composite_truths = [c.box for c in train_composites]
    report("training objects in scenes", composite_maps, composite_sizes, composite_truths, one_side, three_sides)

    if args.tune:
        print(f"\ntuning grid, training boxes / training composites (defaults: levels {LEVELS}, nms_iou {NMS_IOU})")
        grid = list(itertools.product(TUNING_LEVELS, TUNING_NMS))
        for levels, nms_iou in tqdm(grid, desc="grid", file=sys.stderr):
            settings = {"levels": levels, "nms_iou": nms_iou}
            boxes = recall(proposal_boxes(train_maps, train_sizes, **settings), train_truths)
            pasted_boxes = recall(proposal_boxes(composite_maps, composite_sizes, **settings), composite_truths)
            tqdm.write(f"  levels {str(levels):<36} nms_iou {nms_iou:<4g} {boxes:6.1%} {pasted_boxes:6.1%}")

    if args.validation:
        val = list(tiny_imagenet_val(TINY_IMAGENET_VAL, args.limit))
        val_maps, val_sizes = activation_maps(embedder, [image.data for image in val], "validation maps")
        report("validation", val_maps, val_sizes, [image.box for image in val], one_side, three_sides)
        val_composites = composites([image.data for image in val[:VAL_COMPOSITES]], seed=VAL_SEED)
        maps, sizes = activation_maps(embedder, [c.data for c in val_composites], "validation composite maps")
        truths = [c.box for c in val_composites]
        report("validation objects in scenes", maps, sizes, truths, one_side, three_sides)
    print(f"\n{time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
