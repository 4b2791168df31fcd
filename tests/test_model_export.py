"""The exported ONNX embedder against its PyTorch source, its metadata, and the build cache."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from lookalike.images import RESIZE_MODES, to_tensor
from model_export import export_onnx
from tests.support.photos import PHOTOS, photo

PHOTO_NAMES = sorted(PHOTOS)
# ImageNet class indices: tabby, tiger cat, Persian, Siamese, Egyptian cat; espresso, cup, coffee mug.
CATS = {281, 282, 283, 284, 285}
COFFEE = {967, 968, 504}


@pytest.fixture(scope="module")
def session(model_path):
    return ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def metadata(model_path):
    return {prop.key: prop.value for prop in onnx.load(model_path).metadata_props}


@pytest.fixture(scope="module")
def pixels():
    """The bundled photos as the product prepares them, from the export's own constants."""
    return np.stack(
        [
            to_tensor(photo(name), export_onnx.INPUT_SIZE, export_onnx.MEAN, export_onnx.STD, export_onnx.RESIZE)
            for name in PHOTO_NAMES
        ]
    )


def test_onnx_matches_pytorch_on_real_photos(session, pixels):
    onnx_vectors, onnx_maps = session.run(None, {export_onnx.INPUT_NAME: pixels})
    model = export_onnx.EmbeddingNet(export_onnx.load_backbone())
    with torch.no_grad():
        torch_vectors = model(torch.from_numpy(pixels)).numpy()
        torch_maps = export_onnx.activation_map(model.backbone.extract_features(torch.from_numpy(pixels))).numpy()
    assert onnx_vectors.shape == torch_vectors.shape == (len(PHOTO_NAMES), 1280)
    difference = np.abs(onnx_vectors - torch_vectors).max()
    assert difference < 1e-4, f"onnxruntime and PyTorch differ by {difference}"
    assert onnx_maps.shape == torch_maps.shape == (len(PHOTO_NAMES), 7, 7)
    assert np.abs(onnx_maps - torch_maps).max() < 1e-4 * np.abs(torch_maps).max()


def test_metadata_says_what_serving_needs(metadata, session, pixels):
    assert metadata["name"] == export_onnx.MODEL_NAME
    assert metadata["version"] == export_onnx.MODEL_VERSION
    assert int(metadata["input_size"]) == export_onnx.INPUT_SIZE
    assert tuple(map(float, metadata["mean"].split(","))) == export_onnx.MEAN
    assert tuple(map(float, metadata["std"].split(","))) == export_onnx.STD
    assert metadata["resize"] in RESIZE_MODES
    assert metadata["pooling"].split("(")[0] in export_onnx.POOLINGS
    (vectors,) = session.run([export_onnx.OUTPUT_NAME], {export_onnx.INPUT_NAME: pixels[:1]})
    assert int(metadata["dim"]) == vectors.shape[1], "metadata dim is not the output width"


def test_input_and_output_are_named_and_batch_is_dynamic(session):
    (model_input,), (model_output, activation) = session.get_inputs(), session.get_outputs()
    assert (model_input.name, model_input.type) == ("pixels", "tensor(float)")
    assert (model_output.name, model_output.type) == ("embedding", "tensor(float)")
    assert (activation.name, activation.type) == ("activation", "tensor(float)")
    assert activation.shape[1:] == [7, 7] and not isinstance(activation.shape[0], int)
    size = export_onnx.INPUT_SIZE
    assert model_input.shape[1:] == [3, size, size] and not isinstance(model_input.shape[0], int)


def test_batch_of_five_agrees_with_one_at_a_time(session, pixels):
    five = pixels[:5]
    (together,) = session.run(["embedding"], {"pixels": five})
    alone = np.concatenate([session.run(["embedding"], {"pixels": five[i : i + 1]})[0] for i in range(5)])
    assert together.shape == (5, alone.shape[1])
    assert np.abs(together - alone).max() < 1e-5


def test_metadata_normalization_lets_the_classifier_see_the_photos():
    """The weights' own classifier, fed as the metadata says, recognises a cat and a coffee cup.

    A wrong scale (0-255 pixels), channel order or normalization far from the training one
    breaks this; the finer choice between (0.5, 0.5) and ImageNet mean/std is documented in
    export_onnx's docstring.
    """
    classifier = export_onnx.load_backbone()
    for name, expected in (("chelsea", CATS), ("coffee", COFFEE)):
        tensor = to_tensor(photo(name), export_onnx.INPUT_SIZE, export_onnx.MEAN, export_onnx.STD, export_onnx.RESIZE)
        with torch.no_grad():
            probabilities = torch.softmax(classifier(torch.from_numpy(tensor[None])), dim=1)[0]
        best = int(probabilities.argmax())
        assert best in expected, f"{name} classified as ImageNet class {best}"
        assert probabilities[best] > 0.5, f"{name}: only {probabilities[best]:.2f} confident"


def test_build_is_deterministic(tmp_path):
    first, second = tmp_path / "a" / "model.onnx", tmp_path / "b" / "model.onnx"
    assert export_onnx.export(first) and export_onnx.export(second)
    assert first.read_bytes() == second.read_bytes()


def test_cache_is_honoured_until_the_version_changes(tmp_path, monkeypatch, capsys):
    path = tmp_path / "model.onnx"
    real_build = export_onnx.build_onnx
    builds = []

    def counting_build() -> bytes:
        builds.append(1)
        return real_build()

    monkeypatch.setattr(export_onnx, "build_onnx", counting_build)
    export_onnx.main(["--output", str(path)])
    export_onnx.main(["--output", str(path)])
    assert len(builds) == 1, "an up-to-date model was rebuilt"
    assert "up to date" in capsys.readouterr().out

    stale = onnx.load(path)
    onnx.helper.set_model_props(stale, {"version": "stale"})
    onnx.save(stale, path)
    export_onnx.main(["--output", str(path)])
    assert len(builds) == 2, "a model of another version was not rebuilt"
    export_onnx.main(["--output", str(path), "--force"])
    assert len(builds) == 3, "--force did not rebuild"
