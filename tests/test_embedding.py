"""The serving-side embedder: metadata, unit vectors, shape checks, batch-size independence."""

import numpy as np
import onnx
import pytest

from lookalike.embedding import Embedder, InvalidModelError
from tests.support.models import write_bare_model
from tests.support.photos import PHOTOS, photo

PHOTO_NAMES = sorted(PHOTOS)


@pytest.fixture(scope="module")
def photos():
    return [photo(name) for name in PHOTO_NAMES]


def test_info_is_read_from_the_model_metadata(embedder, model_path):
    props = {prop.key: prop.value for prop in onnx.load(model_path).metadata_props}
    info = embedder.info
    assert (info.name, info.version, info.resize) == (props["name"], props["version"], props["resize"])
    assert info.input_size == int(props["input_size"])
    assert info.mean == tuple(float(v) for v in props["mean"].split(","))
    assert info.std == tuple(float(v) for v in props["std"].split(","))
    assert info.dim == int(props["dim"])


def test_vectors_are_unit_length_and_distinct(embedder, photos):
    vectors = embedder.embed_images(photos)
    assert vectors.dtype == np.float32 and vectors.shape == (len(photos), embedder.info.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    off_diagonal = similarity[~np.eye(len(photos), dtype=bool)]
    assert off_diagonal.max() < 0.9, "different photos embed almost alike"


def test_same_image_agrees_across_batch_sizes(embedder, photos):
    reference = embedder.embed_images(photos, batch_size=len(photos))
    for batch_size in (1, 2, 3):
        vectors = embedder.embed_images(photos, batch_size=batch_size)
        assert np.abs(vectors - reference).max() < 1e-5, f"batch_size={batch_size} changes the vectors"


@pytest.mark.parametrize("shape", [(3, 224, 224), (1, 1, 224, 224), (1, 3, 100, 100), (1, 3, 224, 225)])
def test_wrong_shape_is_refused(embedder, shape):
    with pytest.raises(ValueError, match="batch"):
        embedder.embed(np.zeros(shape, dtype=np.float32))


def test_empty_input_gives_no_rows(embedder):
    size = embedder.info.input_size
    assert embedder.embed(np.zeros((0, 3, size, size), dtype=np.float32)).shape == (0, embedder.info.dim)
    assert embedder.embed_images([]).shape == (0, embedder.info.dim)


def test_a_model_without_metadata_is_refused(tmp_path):
    with pytest.raises(ValueError, match="model_export.export_onnx"):
        Embedder(write_bare_model(tmp_path / "bare.onnx"))


def test_a_file_that_is_not_onnx_is_an_invalid_model(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("not a protobuf")
    with pytest.raises(InvalidModelError, match="is not an ONNX model onnxruntime can load"):
        Embedder(path)


def test_a_missing_model_file_says_how_to_build_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="model_export.export_onnx"):
        Embedder(tmp_path / "absent.onnx")
