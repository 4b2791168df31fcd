"""The frozen backbone's features of every view, computed once and kept on disk.

With a frozen backbone, the head is all that trains, and the backbone's output for a given
view never changes: computing it once per view (the whole cost of a run on a CPU: about 20 ms
per view on 2 cores) and reusing it across steps, epochs, seeds and hyperparameter trials turns
hours into minutes. The features are the base model's own embeddings, computed by the serving
core (`lookalike.embedding.Embedder` on the base ONNX model: same decoding, resizing and
normalization as production), so the head trains on exactly what it will receive after export.

Layout: `<directory>/<view set>-<spec hash>/shard-<hash>.npz`, each shard holding the digests of
up to SHARD_IMAGES images and their (n, views, dim) features as float16 (half the disk; the
rounding, 1e-3 relative, is far below what separates neighbours). The spec hash covers the base
model version and the view maker's every parameter (seed included), so a changed recipe never
reads stale features. Shards are written whole under a temporary name and renamed, so an interrupted run
resumes where it stopped and never reads half a shard.
"""

import hashlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from lookalike.embedding import Embedder
from lookalike.images import load_image
from model_export.data import TrainImage

SHARD_IMAGES = 512
# A frozen dataclass (its fields are the cache key) with a `count` and a __call__ giving that many views.
ViewMaker = Callable[[Image.Image, TrainImage], list[Image.Image]]


def decode(image: TrainImage) -> Image.Image:
    """As indexing decodes it (upright RGB)."""
    return load_image(image.data)


def cached_features(
    images: Sequence[TrainImage],
    make_views: ViewMaker,
    embedder: Embedder,
    directory: str | Path,
    progress: bool = True,
) -> np.ndarray:
    """(len(images), views, dim) float32: each image's views through the embedder, cached."""
    name = type(make_views).__name__
    views = make_views.count
    spec = {"views": name, **asdict(make_views), "model": embedder.info.version}
    folder = Path(directory) / f"{name}-{_spec_hash(spec)}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.json").write_text(json.dumps(spec, indent=1, sort_keys=True))
    known = _read_shards(folder)
    missing = list({image.digest: image for image in images if image.digest not in known}.values())
    bar = tqdm(
        total=len(missing) * views, desc=f"features ({name})", unit="view", file=sys.stderr, disable=not progress
    )
    for start in range(0, len(missing), SHARD_IMAGES):
        chunk = missing[start : start + SHARD_IMAGES]
        rendered = []
        for image in chunk:
            image_views = make_views(decode(image), image)
            if len(image_views) != views:
                raise ValueError(f"the view maker gave {len(image_views)} views, not {views}")
            rendered.extend(image_views)
        # Kept in float16 in memory too, so a fresh run and a cached one train on the same numbers.
        features = embedder.embed_images(rendered, batch_size=64).reshape(len(chunk), views, -1).astype(np.float16)
        digests = [image.digest for image in chunk]
        _write_shard(folder, digests, features)
        known.update(zip(digests, features))
        bar.update(len(rendered))
    bar.close()
    return np.stack([known[image.digest] for image in images]).astype(np.float32)


def _spec_hash(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def _read_shards(folder: Path) -> dict[str, np.ndarray]:
    known: dict[str, np.ndarray] = {}
    for shard in sorted(folder.glob("shard-*.npz")):
        with np.load(shard) as contents:
            known.update(zip(contents["digests"].tolist(), contents["features"]))
    return known


def _write_shard(folder: Path, digests: list[str], features: np.ndarray) -> None:
    name = hashlib.sha256("".join(digests).encode()).hexdigest()[:16]
    final = folder / f"shard-{name}.npz"
    partial = folder / f".shard-{name}.{os.getpid()}.tmp"
    with open(partial, "wb") as handle:
        np.savez(handle, digests=np.array(digests), features=features)
    os.replace(partial, final)
