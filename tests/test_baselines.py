"""The baseline embedders: their cosines are the similarities they claim to be."""

import numpy as np
import pytest
from PIL import Image, ImageOps

from lab.baselines import ColourHistogramEmbedder, PerceptualHashEmbedder, RandomEmbedder
from tests.support.photos import photo


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    return [photo(name) for name in ("astronaut", "chelsea", "coffee", "rocket")]


@pytest.mark.parametrize("make", [lambda: RandomEmbedder(3), ColourHistogramEmbedder, PerceptualHashEmbedder])
def test_vectors_have_unit_length_and_the_declared_dimension(make, photos):
    embedder = make()
    vectors = embedder.embed_images(photos)
    assert vectors.shape == (len(photos), embedder.info.dim) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    assert embedder.embed_images([]).shape == (0, embedder.info.dim)


def test_phash_cosine_is_the_hamming_similarity(photos):
    embedder = PerceptualHashEmbedder()
    bits = np.stack([embedder.bits(image) for image in photos])
    vectors = embedder.embed_images(photos)
    hamming = (bits[:, None, :] != bits[None, :, :]).sum(axis=2)
    assert np.allclose(vectors @ vectors.T, 1 - 2 * hamming / 64, atol=1e-6)
    assert bits.sum(axis=1).tolist() == [32] * len(photos)  # above the median: half the bits


def test_phash_survives_a_resize_but_not_a_different_photo(photos):
    embedder = PerceptualHashEmbedder()
    astronaut = photos[0]
    half = astronaut.resize((astronaut.width // 2, astronaut.height // 2))
    original, resized, other = embedder.embed_images([astronaut, half, photos[1]])
    assert original @ resized > 0.9 > original @ other


def test_colour_histogram_ignores_layout_and_sees_colour(photos):
    embedder = ColourHistogramEmbedder()
    coffee = photos[2]
    original, mirrored, grey = embedder.embed_images([coffee, ImageOps.mirror(coffee), ImageOps.grayscale(coffee).convert("RGB")])
    assert original @ mirrored == pytest.approx(1.0, abs=1e-3)
    assert original @ grey < 0.5


def test_random_vectors_follow_the_pixels_and_the_seed(photos):
    first, again = RandomEmbedder(1).embed_images(photos[:2]), RandomEmbedder(1).embed_images(photos[1::-1])
    assert np.array_equal(first, again[::-1])
    assert not np.allclose(first, RandomEmbedder(2).embed_images(photos[:2]))
