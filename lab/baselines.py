"""Baseline embedders, the floor a learned model has to clear, with the Embedder's shape.

Each has an `info` and an `embed_images`, the two things indexing and search use of an
embedder, so a benchmark runs them through the same decode -> index -> search -> re-rank path
as the ONNX model and compares methods, not pipelines. Each maps an image to a unit vector whose
cosine is the baseline's own similarity, so the store's inner product ranks exactly as the
baseline would.
"""

import hashlib
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from PIL import Image

from lookalike.embedding import ModelInfo

# The pixels a baseline needs on the shorter side: search decodes JPEGs at reduced scale down
# to this (lookalike.images.load_image's min_side), so baselines do not pay for full decodes.
HISTOGRAM_SIDE = 128  # decoded at least this size, then shrunk to fit it: plenty of pixels for 512 cells
HASH_SIDE = 32  # pHash's DCT input, 32 x 32 grey pixels
HASH_BITS_SIDE = 8  # the 8 x 8 lowest frequencies give the 64 bits
HISTOGRAM_BINS = 8  # per channel: 8 x 8 x 8 = 512 colour cells
RANDOM_DIM = 64


class ImageEmbedder(Protocol):
    """What indexing and search use of an embedder: lookalike.embedding.Embedder and these."""

    info: ModelInfo

    def embed_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray: ...


def _info(name: str, dim: int, input_size: int) -> ModelInfo:
    """Only name, version, dim and input_size mean anything here: baselines never call to_tensor."""
    return ModelInfo(name, f"{name}-1", input_size, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), dim, "squash")


def _stack(rows: list[np.ndarray], dim: int) -> np.ndarray:
    return np.stack(rows).astype(np.float32) if rows else np.zeros((0, dim), dtype=np.float32)


class RandomEmbedder:
    """A ranking by chance: a Gaussian vector seeded by the pixels' digest (and `seed`), so the
    same picture always gets the same vector and a run is reproducible whatever its order."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.info = _info("random", RANDOM_DIM, 8)

    def embed_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        return _stack([self._vector(image) for image in images], RANDOM_DIM)

    def _vector(self, image: Image.Image) -> np.ndarray:
        digest = hashlib.blake2b(image.tobytes(), digest_size=8, key=str(self.seed).encode()).digest()
        vector = np.random.default_rng(int.from_bytes(digest, "little")).standard_normal(RANDOM_DIM)
        return vector / np.linalg.norm(vector)


class ColourHistogramEmbedder:
    """Global colour: the joint RGB histogram over 8 x 8 x 8 cells, as the square roots of its
    frequencies. Those have unit length, and their cosine is the Bhattacharyya coefficient of
    the two histograms, the classic histogram similarity."""

    def __init__(self) -> None:
        self.info = _info("colour-histogram", HISTOGRAM_BINS**3, HISTOGRAM_SIDE)

    def embed_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        return _stack([self._vector(image) for image in images], self.info.dim)

    def _vector(self, image: Image.Image) -> np.ndarray:
        small = image.convert("RGB")
        small.thumbnail((HISTOGRAM_SIDE, HISTOGRAM_SIDE), Image.Resampling.BILINEAR)
        cells = np.asarray(small, dtype=np.int64).reshape(-1, 3) * HISTOGRAM_BINS // 256
        index = (cells[:, 0] * HISTOGRAM_BINS + cells[:, 1]) * HISTOGRAM_BINS + cells[:, 2]
        counts = np.bincount(index, minlength=self.info.dim)
        return np.sqrt(counts / counts.sum())


def _dct_matrix(size: int) -> np.ndarray:
    """DCT-II without normalization: row k is cos(pi (2n + 1) k / 2N). Only signs relative to a
    median are kept, so the scale, uniform over coefficients, does not matter."""
    n = np.arange(size)
    return np.cos(np.pi * (2 * n[None, :] + 1) * n[:, None] / (2 * size))


class PerceptualHashEmbedder:
    """DCT perceptual hash (pHash): grey 32 x 32 pixels, 2-D DCT, the 8 x 8 lowest frequencies,
    one bit per coefficient above their median (the convention of the `imagehash` package).

    The 64 bits become +-1/8: the vector has unit length and the cosine of two hashes is
    1 - 2 * Hamming / 64, the Hamming similarity exactly, so the store ranks as a hash lookup
    by Hamming distance would (ties included: 65 possible scores).
    """

    def __init__(self) -> None:
        self.info = _info("phash", HASH_BITS_SIDE**2, HASH_SIDE)
        self._dct = _dct_matrix(HASH_SIDE)

    def embed_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        return _stack([self._vector(image) for image in images], self.info.dim)

    def bits(self, image: Image.Image) -> np.ndarray:
        grey = image.convert("L").resize((HASH_SIDE, HASH_SIDE), Image.Resampling.LANCZOS)
        coefficients = self._dct @ np.asarray(grey, dtype=np.float64) @ self._dct.T
        low = coefficients[:HASH_BITS_SIDE, :HASH_BITS_SIDE].ravel()
        return low > np.median(low)

    def _vector(self, image: Image.Image) -> np.ndarray:
        return np.where(self.bits(image), 1.0, -1.0) / HASH_BITS_SIDE
