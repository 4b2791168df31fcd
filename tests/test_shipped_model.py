"""Shipping a trained model: committed parameters + manifest, composed with the PyPI backbone by
`make setup` (model_export.export_onnx), carried unchanged by `make layers`.

The parameters come from a few real training steps at smoke size (2 Tiny ImageNet classes,
one unfrozen block and a small head), so the folder is exactly what training writes.
"""

import dataclasses
import hashlib
import json
import shutil
import zipfile

import numpy as np
import onnx
import pytest

from layers.build import MODEL_ARCNAME, build_model
from lookalike.paths import default_model_path
from model_export import export_onnx, train
from model_export.shipped import (
    MANIFEST_FILENAME,
    PARAMETERS_FILENAME,
    ShippedModelError,
    load_shipped,
    version_of,
    write_parameters,
)
from tests.support.training import training_paths

# The CPU recipe's shape, shrunk: one unfrozen block, a small head, two steps.
TINY = dataclasses.replace(
    train.parse_hyperparameters(["--recipe", "cpu"], environ={}),
    pairs="classes", unfreeze_blocks=1, train_size=64, hidden=16, dim=8, steps=2, batch_size=4,
    classes=2, per_class=3, holdout=0, eval_every=0,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, model_path, tiny_imagenet_train_tar):
    """The model folder of a two-step run: parameters.npz, manifest.json and model.onnx."""
    root = tmp_path_factory.mktemp("trained")
    paths = training_paths(root, model_path)
    train.train(TINY, paths, progress=False)
    return root / "model"


def version(path) -> str:
    return {prop.key: prop.value for prop in onnx.load(path).metadata_props}["version"]


def test_training_writes_only_what_it_changed_and_a_manifest_that_vouches_for_it(trained):
    shipped = load_shipped(trained)
    names = set(shipped.parameters)
    assert {name for name in names if name.startswith("head.")} == {f"head.{n}" for n in ("inner.weight", "inner.bias", "outer.weight", "outer.bias")}
    backbone = {name for name in names if name.startswith("backbone.")}
    assert backbone and all(name.startswith(("backbone._blocks.15.", "backbone._conv_head.")) for name in backbone), backbone
    manifest = json.loads((trained / MANIFEST_FILENAME).read_text())
    assert manifest["sha256"] == hashlib.sha256((trained / PARAMETERS_FILENAME).read_bytes()).hexdigest()
    assert manifest["head"] == {"kind": "mlp", "hidden": 16, "dim": 8}
    assert manifest["training"]["command"].startswith("python -m model_export.train ")
    assert "--unfreeze-blocks 1" in manifest["training"]["command"]


def test_composing_twice_gives_the_bytes_training_evaluated(trained, tmp_path):
    first, second = tmp_path / "a.onnx", tmp_path / "b.onnx"
    assert export_onnx.export(first, shipped_dir=trained)
    assert export_onnx.export(second, shipped_dir=trained)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() == (trained / train.MODEL_FILENAME).read_bytes(), "setup would ship another model than was trained"


def test_the_model_version_is_the_parameters_and_the_cache_follows_it(trained, tmp_path, model_path):
    path = tmp_path / "model.onnx"
    assert export_onnx.export(path, shipped_dir=tmp_path / "nothing")
    assert version(path) == export_onnx.MODEL_VERSION
    assert export_onnx.export(path, shipped_dir=trained), "a cached raw backbone was kept over the shipped model"
    sha256 = hashlib.sha256((trained / PARAMETERS_FILENAME).read_bytes()).hexdigest()
    assert version(path) == version_of(sha256) != export_onnx.MODEL_VERSION
    assert not export_onnx.export(path, shipped_dir=trained), "an up-to-date shipped model was rebuilt"


def test_without_shipped_parameters_setup_builds_the_raw_backbone_as_before(tmp_path, model_path):
    path = tmp_path / "model.onnx"
    export_onnx.export(path, shipped_dir=tmp_path / "empty")
    assert path.read_bytes() == export_onnx.build_onnx()


def test_a_manifest_that_does_not_match_its_parameters_is_refused(trained, tmp_path, capsys):
    tampered = tmp_path / "shipped"
    shutil.copytree(trained, tampered)
    parameters = dict(np.load(tampered / PARAMETERS_FILENAME))
    parameters["head.outer.bias"] = parameters["head.outer.bias"] + 1
    write_parameters(tampered, parameters)
    with pytest.raises(ShippedModelError, match="sha256"):
        export_onnx.export(tmp_path / "model.onnx", shipped_dir=tampered)
    status = export_onnx.main(["--output", str(tmp_path / "model.onnx"), "--shipped", str(tampered)])
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1 and "vouches for" in err
    assert not (tmp_path / "model.onnx").exists()


def test_an_incomplete_head_is_refused(trained, tmp_path):
    partial = tmp_path / "shipped"
    shutil.copytree(trained, partial)
    parameters = {name: array for name, array in np.load(partial / PARAMETERS_FILENAME).items() if name != "head.inner.bias"}
    manifest = json.loads((partial / MANIFEST_FILENAME).read_text())
    manifest["sha256"] = write_parameters(partial, parameters)
    (partial / MANIFEST_FILENAME).write_text(json.dumps(manifest))
    with pytest.raises(ShippedModelError, match="head.inner.bias"):
        export_onnx.export(tmp_path / "model.onnx", shipped_dir=partial)


def test_the_layer_ships_the_model_setup_built(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKALIKE_MODEL", str(tmp_path / "cache" / "embedder.onnx"))
    assert export_onnx.main(["--shipped", str(trained)]) == 0
    layer = build_model(tmp_path, default_model_path())
    with zipfile.ZipFile(layer.path) as archive:
        shipped = archive.read(MODEL_ARCNAME)
    trained_model = (trained / train.MODEL_FILENAME).read_bytes()
    assert hashlib.sha256(shipped).hexdigest() == hashlib.sha256(trained_model).hexdigest()


def test_parameters_files_are_reproducible_and_half_precision_rounds_only(tmp_path):
    rng = np.random.default_rng(0)
    parameters = {"head.inner.weight": rng.normal(size=(4, 3)).astype(np.float32), "head.inner.bias": np.zeros(4, np.float32)}
    assert write_parameters(tmp_path / "a", parameters) == write_parameters(tmp_path / "b", dict(reversed(parameters.items())))
    write_parameters(tmp_path / "half", parameters, "float16")
    half = np.load(tmp_path / "half" / PARAMETERS_FILENAME)
    assert half["head.inner.weight"].dtype == np.float16
    assert np.abs(half["head.inner.weight"] - parameters["head.inner.weight"]).max() < 1e-2
    assert (tmp_path / "half" / PARAMETERS_FILENAME).stat().st_size < (tmp_path / "a" / PARAMETERS_FILENAME).stat().st_size


def test_an_unknown_precision_is_refused(tmp_path):
    with pytest.raises(ValueError, match="float16"):
        write_parameters(tmp_path, {}, "int8")
    with pytest.raises(SystemExit):
        train.parse_hyperparameters(["--parameters-dtype", "int8"], environ={})
