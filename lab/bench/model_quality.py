"""Quick side-by-side of embedders: retrieval quality on Tiny ImageNet validation images, and speed.

    python -m lab bench model_quality MODEL.onnx [MODEL.onnx ...] [--images 600] [--threads 2]

A sanity check, not the evaluation (that is `python -m lab evaluate`, docs/EVALUATION.md), and never
a tuning signal: hyperparameters are chosen on the held-out part of the training tar. Used for
the fine-tuned models and their int8 variants in docs/TRAINING.md.

Quality, through the serving core (Embedder on each ONNX file): the first `--images` validation
images by file number, with model_export.heldout's three numbers: category mAP (each image
queries the others, same class relevant), fragment mAP (the annotated object box queries the
whole images) and crop top-1 (a half-area crop finds its source first).

Speed: images per second embedding 32 random 224-pixel inputs, as one batch of 32 and as 32
batches of 1 (a search embeds one query), with `--threads` onnxruntime threads; best of
`--rounds` timed runs after a warm-up, the models taking turns in each round (best-of and
turns because the CPU is shared: the minimum is the least disturbed run).
"""

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lab.bench import argument_parser
from lab.datasets import TINY_IMAGENET_VAL, tiny_imagenet_val
from lookalike.embedding import Embedder
from model_export.augment import ProbeViews
from model_export.data import TrainImage
from model_export.features import decode
from model_export.heldout import retrieval_metrics

SPEED_IMAGES = 32  # per timed run: one batch of 32, or 32 batches of 1


def images_per_second(embedders: list[Embedder], batch_size: int, rounds: int) -> list[float]:
    """Best of `rounds` per model, the models taking turns within each round, so that whatever
    else runs on the machine slows them alike instead of whichever happened to run then."""
    size = embedders[0].info.input_size
    batch = np.random.default_rng(0).standard_normal((batch_size, 3, size, size), dtype=np.float32)
    repeats = max(1, SPEED_IMAGES // batch_size)
    best = [float("inf")] * len(embedders)
    for embedder in embedders:
        embedder.embed(batch)
    for _ in range(rounds):
        for position, embedder in enumerate(embedders):
            started = time.perf_counter()
            for _ in range(repeats):
                embedder.embed(batch)
            best[position] = min(best[position], time.perf_counter() - started)
    return [repeats * batch_size / seconds for seconds in best]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argument_parser(__file__, __doc__)
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args(argv)

    labelled = list(tiny_imagenet_val(TINY_IMAGENET_VAL, limit=args.images))
    items = [TrainImage.from_labelled(image) for image in labelled]
    views = [view for item in items for view in ProbeViews()(decode(item), item)]
    labels = np.unique([item.label for item in items], return_inverse=True)[1]
    embedders = [Embedder(model, threads=args.threads) for model in args.models]
    print(f"{len(items)} validation images; speed: best of {args.rounds} rounds, {args.threads} onnxruntime threads")
    header = ("model", "version", "dim", "category mAP", "fragment mAP", "crop top-1", "img/s b=1", "img/s b=32")
    print("{:<34} {:<24} {:>4} {:>12} {:>12} {:>10} {:>10} {:>10}".format(*header))
    speeds = {size: images_per_second(embedders, size, args.rounds) for size in (1, SPEED_IMAGES)}
    for position, (model, embedder) in enumerate(zip(args.models, embedders)):
        vectors = embedder.embed_images(views).reshape(len(items), ProbeViews.count, -1)
        metrics = retrieval_metrics(*vectors.transpose(1, 0, 2), labels)
        print(
            f"{model.name:<34} {embedder.info.version:<24} {embedder.info.dim:>4} {metrics['category_map']:>12.4f} "
            f"{metrics['fragment_map']:>12.4f} {metrics['crop_top1']:>10.3f} "
            f"{speeds[1][position]:>10.1f} {speeds[SPEED_IMAGES][position]:>10.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
