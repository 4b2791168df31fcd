"""Seconds per step of backbone fine-tuning, and what a whole run would take at that pace.

    python -m lab bench finetune_step [--recipe cpu] [--measure 5] [--quick] [--set NAME=VALUE ...]

One training step of `model_export.train` as the recipe runs it (edited views made in tensor
ops, the unfrozen backbone forward and backward over anchors, positives and hard negatives,
the optimizer step) on Tiny ImageNet training images, with click pairs made of classmates and
two other-class negatives each (what the simulator's clicks look like). The median over
`--measure` steps after one warm-up, then steps x that median: the number that says whether
`make train-default` fits its hour. `--quick` measures two steps of eight pairs. Run it on
otherwise idle cores: other processes slow every step, and the projection with them.
"""

import dataclasses
import statistics
import time
from collections.abc import Sequence

import torch

from lab.bench import argument_parser
from lab.datasets import TINY_IMAGENET_TRAIN
from lookalike.embedding import Embedder
from lookalike.interactions.click_labels import TrainingPair
from lookalike.paths import default_model_path
from model_export import export_onnx, train
from model_export.batches import PairSampler
from model_export.data import build_training_set, split_tiny_imagenet
from model_export.encoders import LiveEncoder
from model_export.head import InfoNCE, ProjectionHead
from model_export.tensor_views import TensorAugment

HOUR_SECONDS = 3600


def classmate_clicks(images) -> list[TrainingPair]:
    """Each image clicked from its predecessor of the same class, two images of the next class shown and skipped."""
    by_class: dict[str, list[str]] = {}
    for image in images:
        by_class.setdefault(image.label, []).append(image.key)
    labels = sorted(by_class)
    pairs = []
    for index, label in enumerate(labels):
        keys, others = by_class[label], by_class[labels[(index + 1) % len(labels)]]
        pairs += [TrainingPair(a, b, others[:2], 1.0, 3) for a, b in zip(keys, keys[1:])]
    return pairs


def main(argv: Sequence[str] | None = None) -> None:
    parser = argument_parser(__file__, __doc__)
    parser.add_argument("--recipe", choices=sorted(train.RECIPES), default="cpu")
    parser.add_argument("--measure", type=int, default=5, help="steps measured after one warm-up")
    parser.add_argument("--quick", action="store_true", help="two steps of eight pairs")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a recipe value")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    overrides = [f"--{item.split('=', 1)[0].replace('_', '-')}={item.split('=', 1)[1]}" for item in args.set]
    hp = train.parse_hyperparameters(["--recipe", args.recipe, *overrides], environ={})
    measure = 2 if args.quick else args.measure
    if args.quick:
        hp = dataclasses.replace(hp, batch_size=8)
    torch.set_num_threads(args.threads)

    images, _ = split_tiny_imagenet(TINY_IMAGENET_TRAIN, 8, 16, 0)
    dataset = build_training_set(images, classmate_clicks(images), {image.key: image for image in images})
    export_onnx.export(default_model_path())
    embedder = Embedder(default_model_path())
    augment = TensorAugment(crop_area=(hp.crop_area_min, 1.0))
    encoder = LiveEncoder(dataset.images, hp.unfreeze_blocks, embedder.info, hp.train_size, augment, hp.view_seed)
    sampler = PairSampler(dataset, "clicks", hp.batch_size, hp.aug_fraction, hp.views, hp.hard_negatives, hp.seed)
    head = ProjectionHead(hp.head, embedder.info.dim, hp.hidden, hp.dim)
    loss_fn = InfoNCE(hp.temperature)
    optimizer = torch.optim.AdamW([*head.parameters(), *encoder.trainable()], lr=hp.lr)

    seconds = []
    for step in range(measure + 1):
        started = time.perf_counter()
        loss = train.batch_loss(sampler.batch(step), encoder, head, loss_fn)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seconds.append(time.perf_counter() - started)
    per_step = statistics.median(seconds[1:])
    batch = sampler.batch(0)
    views = 2 * len(batch.anchor_rows) + int((batch.negative_rows >= 0).sum())
    total = per_step * hp.steps
    print(
        f"recipe {args.recipe}: {hp.unfreeze_blocks} blocks at {hp.train_size or embedder.info.input_size} px, "
        f"{hp.batch_size} pairs + {views - 2 * hp.batch_size} hard negatives = {views} views a step, {args.threads} threads"
    )
    print(f"{per_step:.2f} s/step (median of {measure}), {1000 * per_step / views:.1f} ms/view")
    print(
        f"{hp.steps} steps: {total / 60:.0f} min ({'within' if total <= HOUR_SECONDS else 'over'} the hour); "
        f"steps that fit an hour: {int(HOUR_SECONDS / per_step)}; last loss {loss.item():.3f}"
    )


if __name__ == "__main__":
    main()
