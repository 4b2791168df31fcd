"""Contrastive fine-tuning at smoke size: the SageMaker entry point end to end, and its parts.

Smoke size: 4 Tiny ImageNet training classes, 10 images each (3 of them held out), 3 views per
image, 40 steps of 32 pairs. Real runs and their numbers are in docs/TRAINING.md.
"""

import dataclasses
import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from lab.datasets import tiny_imagenet_train
from lookalike.embedding import Embedder
from lookalike.images import to_tensor
from lookalike.interactions.click_labels import TrainingPair
from model_export import export_onnx, train
from model_export.batches import PairSampler
from model_export.data import TrainImage, build_training_set
from model_export.head import InfoNCE, ProjectionHead
from model_export.heldout import mean_average_precision
from tests.support.photos import PHOTOS, photo
from tests.support.training import training_paths as paths

SMOKE = train.Hyperparameters(
    head="mlp",  # the projection to another width exercises the metadata's dim
    lr=1e-3,
    steps=40,
    batch_size=32,
    hidden=64,
    dim=32,
    views=3,
    classes=4,
    per_class=10,
    holdout=3,
    checkpoint_every=20,
    eval_every=10,
)


@pytest.fixture(scope="module")
def channels(tmp_path_factory, tiny_imagenet_train_tar):
    """A gallery of the smoke classes' training images and click pairs between classmates, as
    `lookalike training-set` writes them; one key names no gallery file and must be skipped."""
    root = tmp_path_factory.mktemp("channels")
    gallery, clicks = root / "gallery", root / "clicks"
    clicks.mkdir()
    by_class: dict[str, list[str]] = {}
    for number, image in tiny_imagenet_train(tiny_imagenet_train_tar, classes=SMOKE.classes, per_class=7):
        key = f"{image.label}/{number}.jpg"
        (gallery / image.label).mkdir(parents=True, exist_ok=True)
        (gallery / key).write_bytes(image.data)
        by_class.setdefault(image.label, []).append(key)
    labels = sorted(by_class)
    lines = []
    for index, label in enumerate(labels):
        keys, other = by_class[label], by_class[labels[(index + 1) % len(labels)]]
        for a, b in zip(keys, keys[1:] + keys[:1]):
            weight = 1.0 + len(lines) % 3
            lines.append({"query": a, "positive": b, "negatives": other[:2], "weight": weight, "sessions": 3})
    missing = {"query": "gone.jpg", "positive": by_class[labels[0]][0], "negatives": [], "weight": 1.0, "sessions": 2}
    lines.append(missing)
    (clicks / "pairs.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return {"clicks": clicks, "gallery": gallery}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, model_path, channels):
    """The same smoke training twice, from scratch each time (own feature cache, own checkpoints)."""
    results = []
    for name in ("first", "second"):
        root = tmp_path_factory.mktemp(name)
        results.append((root, train.train(SMOKE, paths(root, model_path, **channels), progress=False)))
    return results


@pytest.fixture(scope="module")
def first(runs):
    return runs[0]


def test_loss_decreases(first):
    _, result = first
    assert len(result.losses) == SMOKE.steps
    start, end = np.mean(result.losses[:5]), np.mean(result.losses[-5:])
    assert end < 0.8 * start, f"loss went from {start:.3f} to {end:.3f}"


def test_click_pairs_were_used_and_the_missing_key_skipped(first):
    _, result = first
    assert result.metrics["pairs"] == "clicks"
    assert result.metrics["click_pairs"] == SMOKE.classes * 7


def test_checkpoint_and_outputs_are_written(first):
    root, result = first
    checkpoint = torch.load(root / "checkpoints" / train.CHECKPOINT_FILENAME, weights_only=False)
    assert len(checkpoint["run"]["losses"]) == SMOKE.steps
    assert {"head", "loss", "optimizer", "schedule"} <= set(checkpoint)
    metrics = json.loads((root / "output" / "metrics.json").read_text())
    assert metrics["version"] == result.version
    assert set(metrics["heldout"]) == {"backbone", "finetuned"}
    assert len((root / "output" / "loss.csv").read_text().splitlines()) == SMOKE.steps + 1
    assert (root / "output" / "loss.png").read_bytes().startswith(b"\x89PNG")


def test_the_best_head_on_held_out_images_is_kept(first):
    _, result = first
    curve = result.metrics["heldout_curve"]
    assert [step for step, _ in curve] == [0, 10, 20, 30, 40]
    assert result.metrics["best_step"] == max(curve, key=lambda point: point[1])[0]


def test_a_run_remembers_its_best_head():
    run, head = train._Run(), ProjectionHead("mlp", 4, 4, 2)
    run.record(0, 0.2, head)
    with torch.no_grad():
        head.inner.weight.add_(1.0)
    run.record(10, 0.1, head)
    assert run.best_step == 0 and run.curve == [(0, 0.2), (10, 0.1)]
    assert not torch.equal(run.best_head["inner.weight"], head.inner.weight), "the worse head replaced the best"


def test_export_loads_in_the_core_with_the_metadata_it_reads(first, model_path):
    _, result = first
    tuned, base = Embedder(result.model_path), Embedder(model_path)
    assert result.version.startswith("ft-") and tuned.info.version == result.version
    assert tuned.info.dim == SMOKE.dim
    unchanged = ("name", "input_size", "mean", "std", "resize")
    assert [getattr(tuned.info, key) for key in unchanged] == [getattr(base.info, key) for key in unchanged]
    vectors = tuned.embed_images([photo("chelsea"), photo("coffee")])
    assert vectors.shape == (2, SMOKE.dim)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


def test_export_has_the_base_models_outputs_and_a_frozen_backbones_activation(first, model_path):
    _, result = first
    tuned = ort.InferenceSession(str(result.model_path), providers=["CPUExecutionProvider"])
    base = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    assert [o.name for o in tuned.get_outputs()] == [o.name for o in base.get_outputs()]
    pixels = _pixels(["astronaut"])
    tuned_activation = tuned.run([export_onnx.ACTIVATION_NAME], {export_onnx.INPUT_NAME: pixels})[0]
    base_activation = base.run([export_onnx.ACTIVATION_NAME], {export_onnx.INPUT_NAME: pixels})[0]
    assert np.abs(tuned_activation - base_activation).max() < 1e-4


def test_onnxruntime_matches_pytorch_rebuilt_from_the_checkpoint(first):
    root, result = first
    checkpoint = torch.load(root / "checkpoints" / train.CHECKPOINT_FILENAME, weights_only=False)
    head = ProjectionHead(SMOKE.head, 1280, SMOKE.hidden, SMOKE.dim)
    head.load_state_dict(checkpoint["run"]["best_head"])
    net = export_onnx.EmbeddingNet(export_onnx.load_backbone(), head=head.eval()).eval()
    pixels = _pixels(sorted(PHOTOS))
    with torch.no_grad():
        reference = net(torch.from_numpy(pixels)).numpy()
    exported = Embedder(result.model_path).embed(pixels)
    assert np.abs(exported - reference).max() < train.PARITY_TOLERANCE
    assert result.metrics["parity_max_abs_diff"] < train.PARITY_TOLERANCE


def test_same_seed_same_model_bytes(runs):
    (_, first_result), (_, second_result) = runs
    assert first_result.losses == second_result.losses
    assert first_result.version == second_result.version
    assert first_result.model_path.read_bytes() == second_result.model_path.read_bytes()


def test_a_killed_run_resumes_from_its_checkpoint_and_ends_the_same(first, tmp_path, model_path, channels, monkeypatch):
    root, result = first
    run_paths = paths(tmp_path, model_path, root / "features", **channels)
    real_batch = PairSampler.batch

    def dies_at_step_25(self, step):
        if step == 25:
            raise KeyboardInterrupt
        return real_batch(self, step)

    monkeypatch.setattr(PairSampler, "batch", dies_at_step_25)
    with pytest.raises(KeyboardInterrupt):
        train.train(SMOKE, run_paths, progress=False)
    checkpoint = torch.load(tmp_path / "checkpoints" / train.CHECKPOINT_FILENAME, weights_only=False)
    assert len(checkpoint["run"]["losses"]) == 20
    monkeypatch.setattr(PairSampler, "batch", real_batch)
    resumed = train.train(SMOKE, run_paths, progress=False)
    assert resumed.losses == result.losses
    assert resumed.model_path.read_bytes() == result.model_path.read_bytes()


@pytest.mark.usefixtures("tiny_imagenet_train_tar")
def test_unfrozen_blocks_train_and_export(tmp_path, model_path):
    hp = dataclasses.replace(SMOKE, steps=1, batch_size=2, unfreeze_blocks=1, holdout=0, classes=2, per_class=3)
    result = train.train(hp, paths(tmp_path, model_path), progress=False)
    checkpoint = torch.load(tmp_path / "checkpoints" / train.CHECKPOINT_FILENAME, weights_only=False)
    pretrained = export_onnx.load_backbone().state_dict()
    moved = [name for name, tensor in checkpoint["backbone"].items() if not torch.equal(tensor, pretrained[name])]
    assert moved and all(name.startswith(("_blocks.15.", "_conv_head.")) for name in moved), moved
    assert result.metrics["pairs"] == "classes"
    assert result.metrics["parity_max_abs_diff"] < train.PARITY_TOLERANCE


def test_the_cpu_recipe_fine_tunes_every_block_at_a_reduced_size_on_clicks_and_edits(tmp_path, model_path, channels):
    """The recipe's shape at smoke size: all blocks unfrozen, 64-pixel views, click pairs with
    hard negatives beside edited views; the export serves at the model's own input size."""
    hp = dataclasses.replace(
        SMOKE, steps=2, batch_size=6, unfreeze_blocks=16, train_size=64, hard_negatives=2, holdout=0, classes=2, per_class=3
    )
    result = train.train(hp, paths(tmp_path, model_path, **channels), progress=False)
    assert result.metrics["pairs"] == "clicks" and np.isfinite(result.losses).all()
    moved = {name.split(".")[2] for name in np.load(tmp_path / "model" / "parameters.npz") if name.startswith("backbone._blocks.")}
    assert moved == {str(block) for block in range(16)}, f"blocks left frozen: {sorted(set(map(str, range(16))) - moved)}"
    assert Embedder(result.model_path).info.input_size == export_onnx.INPUT_SIZE
    assert result.metrics["parity_max_abs_diff"] < train.PARITY_TOLERANCE


def test_a_reduced_training_size_needs_an_unfrozen_backbone_and_the_stride():
    for argv in (["--train-size", "128"], ["--train-size", "100", "--unfreeze-blocks", "4"]):
        with pytest.raises(SystemExit):
            train.parse_hyperparameters(argv, environ={})
    assert train.parse_hyperparameters(["--train-size", "128", "--unfreeze-blocks", "4"], environ={}).train_size == 128


def test_hyperparameters_come_from_arguments_over_sm_hps_over_defaults():
    environ = {"SM_HPS": json.dumps({"steps": 7, "head": "residual", "learn_temperature": False, "lr": "0.01"})}
    hp = train.parse_hyperparameters(["--steps", "9", "--view-seed", "3"], environ)
    assert (hp.steps, hp.head, hp.learn_temperature, hp.lr, hp.view_seed) == (9, "residual", False, 0.01, 3)
    assert hp.batch_size == train.Hyperparameters.batch_size
    with pytest.raises(SystemExit):
        train.parse_hyperparameters([], {"SM_HPS": json.dumps({"stepz": 3})})
    with pytest.raises(SystemExit):
        train.parse_hyperparameters(["--head", "transformer"], {})


def test_paths_follow_sagemaker_channels(tmp_path):
    channel = tmp_path / "train"
    channel.mkdir()
    (channel / "train-100.tar").write_bytes(b"")
    environ = {
        "SM_CHANNEL_TRAIN": str(channel),
        "SM_CHANNEL_CLICKS": str(tmp_path / "clicks"),
        "SM_MODEL_DIR": str(tmp_path / "model"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    found = train.Paths.from_environment(environ)
    assert found.train_tar() == channel / "train-100.tar"
    assert (found.clicks, found.gallery, found.model_dir) == (tmp_path / "clicks", None, tmp_path / "model")
    assert found.checkpoint_dir == tmp_path / "cache" / "lookalike" / "training" / "checkpoints"


def test_training_set_rows_are_distinct_images_and_pairs_name_them():
    a, b, c = (TrainImage(f"tar/{n}", bytes([n]) * 10, "n01", None) for n in range(3))
    gallery = {"copy-of-a.jpg": TrainImage("copy-of-a.jpg", a.data), "d.jpg": TrainImage("d.jpg", b"d" * 10)}
    pairs = [
        TrainingPair("copy-of-a.jpg", "d.jpg", ("missing.jpg", "copy-of-a.jpg", "d.jpg"), 2.0),
        TrainingPair("d.jpg", "gone.jpg"),
        TrainingPair("d.jpg", "d.jpg"),
    ]
    dataset = build_training_set([a, b, c], pairs, gallery)
    assert len(dataset.images) == 4, "the gallery copy of a tar image is the same row"
    assert dataset.labels.tolist() == [0, 0, 0, -1]
    assert (dataset.pair_queries.tolist(), dataset.pair_positives.tolist()) == ([0], [3])
    assert dataset.pair_negatives.shape == (1, 0), "a pair's own query and positive are never its negatives"
    assert dataset.pair_weights.tolist() == [2.0]


def test_click_batches_carry_weights_and_hard_negatives():
    images = [TrainImage(f"k{n}", bytes([n]) * 10) for n in range(6)]
    gallery = {image.key: image for image in images}
    pairs = [TrainingPair("k0", "k1", ("k2", "k3"), 1.0), TrainingPair("k4", "k5", ("k2",), 3.0)]
    dataset = build_training_set([], pairs, gallery)
    sampler = PairSampler(dataset, "clicks", batch_size=8, aug_fraction=0.5, views=3, hard_negatives=4, seed=0)
    batch = sampler.batch(0)
    again = sampler.batch(0)
    assert all(np.array_equal(getattr(again, f.name), getattr(batch, f.name)) for f in dataclasses.fields(batch))
    supervised = slice(0, 4)
    assert set(batch.positive_rows[supervised].tolist()) <= {1, 5}
    assert np.allclose(batch.weights[supervised], np.where(batch.positive_rows[supervised] == 1, 0.5, 1.5))
    assert np.array_equal(batch.positive_rows[4:], batch.anchor_rows[4:]), "an augmentation pair is one image twice"
    assert (batch.anchor_views[4:] >= 1).all() and (batch.negative_rows[4:] == -1).all()
    assert batch.negative_rows.shape == (8, 4)


def test_the_seed_decides_the_batches():
    dataset = build_training_set([TrainImage(f"t{n}", bytes([n]) * 10, f"n{n % 2}") for n in range(8)], [], {})
    batches = [PairSampler(dataset, "classes", 8, 0.5, 3, 0, seed).batch(0) for seed in (0, 1)]
    assert not np.array_equal(batches[0].anchor_rows, batches[1].anchor_rows)


def test_infonce_prefers_aligned_pairs_and_masks_pairs_sharing_an_image():
    loss = InfoNCE(0.1, learn=False)
    rows = torch.nn.functional.normalize(torch.eye(4, 8) + 0.01, dim=1)
    ones, queries, results = torch.ones(4), torch.arange(10, 14), torch.arange(4)
    aligned = loss(rows, rows, queries, results, ones)
    shuffled = loss(rows, rows.roll(1, dims=0), queries, results, ones)
    assert aligned < 0.1 < shuffled
    twice = torch.stack([rows[0], rows[0], rows[2], rows[3]])  # pairs 0 and 1 look alike...
    unrelated = loss(twice, twice, queries, results, ones)
    assert unrelated > 0.1, "pairs of different images that look alike must be told apart"
    # ...and are not negatives of each other when they share an image, on either side.
    same_result, query_is_a_result = (queries, torch.tensor([0, 0, 2, 3])), (torch.tensor([10, 0, 12, 13]), results)
    for shared_queries, shared_results in (same_result, query_is_a_result):
        assert loss(twice, twice, shared_queries, shared_results, ones) < 0.1
    hard = rows[[1, 0, 3, 2]].unsqueeze(1)
    assert loss(rows, rows, queries, results, ones, hard, torch.ones(4, 1, dtype=torch.bool)) > aligned


def test_temperature_is_learnt_within_its_clamp():
    loss = InfoNCE(0.07, bounds=(0.05, 1.0))
    with torch.no_grad():
        loss.log_scale.fill_(10.0)
    assert loss.temperature == pytest.approx(0.05)


def test_residual_head_starts_as_the_backbone():
    head = ProjectionHead("residual", 16, 8, 4)
    features = torch.nn.functional.normalize(torch.randn(3, 16), dim=1)
    assert head.out_dim == 16
    assert torch.allclose(head(features), features, atol=1e-6)


def test_mean_average_precision_on_a_hand_computed_case():
    # Ranking by score: relevant, irrelevant, relevant -> AP = (1/1 + 2/3) / 2; the -inf item is not ranked.
    scores = np.array([[0.9, 0.5, 0.4, -np.inf]])
    relevant = np.array([[True, False, True, True]])
    assert mean_average_precision(scores, relevant) == pytest.approx((1 + 2 / 3) / 2)


def _pixels(names: list[str]) -> np.ndarray:
    size, mean, std, resize = export_onnx.INPUT_SIZE, export_onnx.MEAN, export_onnx.STD, export_onnx.RESIZE
    return np.stack([to_tensor(photo(name), size, mean, std, resize) for name in names])


def test_a_recipe_sets_defaults_that_sm_hps_and_arguments_override():
    recipe = train.parse_hyperparameters(["--recipe", "cpu"], environ={})
    assert (recipe.unfreeze_blocks, recipe.train_size, recipe.dim) == (16, 128, 256)
    overridden = train.parse_hyperparameters(["--recipe", "cpu", "--dim", "1280"], environ={"SM_HPS": '{"steps": 7}'})
    assert (overridden.dim, overridden.steps, overridden.unfreeze_blocks) == (1280, 7, 16)
    assert train.parse_hyperparameters([], environ={}) == train.Hyperparameters()
