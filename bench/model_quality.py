"""Quick side-by-side of embedders: retrieval quality on Tiny ImageNet validation images, and speed.

    python -m bench.model_quality MODEL.onnx [MODEL.onnx ...] [--images 600] [--threads 2]

A sanity check, not the evaluation (that is `lookalike evaluate`, docs/EVALUATION.md), and never
a tuning signal: hyperparameters are chosen on the held-out part of the training tar. Used for
the fine-tuned models and their int8 variants in docs/TRAINING.md.

Quality, through the serving core (Embedder on each ONNX file): the first `--images` validation
images by file number, with model_export.heldout's three numbers: category mAP (each image
queries the others, same class relevant), fragment mAP (the annotated object box queries the
whole images) and crop top-1 (a half-area crop finds its source first).

Speed: images per second embedding a fixed batch of 32 random 224-pixel inputs, best of
`--repeats` timed runs after a warm-up (best-of because the CPU is shared: the minimum is the
least disturbed run), with `--threads` onnxruntime threads.
"""

import argparse
import time
from pathlib import Path

import numpy as np

from lookalike.datasets import tiny_imagenet_val
from lookalike.embedding import Embedder
from model_export.augment import ProbeViews
from model_export.data import TrainImage
from model_export.features import decode
from model_export.heldout import retrieval_metrics

VAL_TAR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "tiny-imagenet" / "val.tar"
SPEED_BATCH = 32


def images_per_second(embedder: Embedder, repeats: int) -> float:
    size = embedder.info.input_size
    batch = np.random.default_rng(0).standard_normal((SPEED_BATCH, 3, size, size), dtype=np.float32)
    embedder.embed(batch)
    best = min(_timed(embedder, batch) for _ in range(repeats))
    return SPEED_BATCH / best


def _timed(embedder: Embedder, batch: np.ndarray) -> float:
    started = time.perf_counter()
    embedder.embed(batch)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    labelled = list(tiny_imagenet_val(VAL_TAR, limit=args.images))
    items = [TrainImage(image.name, image.data, image.label, image.box) for image in labelled]
    views = [view for item in items for view in ProbeViews()(decode(item), item)]
    labels = np.unique([item.label for item in items], return_inverse=True)[1]
    header = ("model", "version", "dim", "category mAP", "fragment mAP", "crop top-1", "img/s")
    print("{:<44} {:<22} {:>4} {:>12} {:>12} {:>10} {:>7}".format(*header))
    for model in args.models:
        embedder = Embedder(model, threads=args.threads)
        vectors = embedder.embed_images(views).reshape(len(items), ProbeViews.count, -1)
        metrics = retrieval_metrics(*vectors.transpose(1, 0, 2), labels)
        speed = images_per_second(embedder, args.repeats)
        print(
            f"{model.name:<44} {embedder.info.version:<22} {embedder.info.dim:>4} {metrics['category_map']:>12.4f} "
            f"{metrics['fragment_map']:>12.4f} {metrics['crop_top1']:>10.3f} {speed:>7.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
