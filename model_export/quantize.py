"""int8 variants of an exported embedder, for CPUs where speed matters more than the last points of quality.

    python -m model_export.quantize MODEL.onnx [--output PATH] [--mode static|dynamic] [--calibration 256]

- static (default): weights (per channel) and activations in int8, QDQ format; the activation
  ranges are calibrated (min/max) on `--calibration` images of the Tiny ImageNet training tar,
  prepared exactly as serving prepares inputs, never on evaluation images;
- dynamic: int8 weights, activations quantized per batch at run time; no calibration.
The metadata the core reads is carried over, with "-int8" (or "-int8dyn") appended to the
version: the vectors differ from the float model's, so a store built with one refuses the other.
Speed and quality of each variant are measured by `python -m lab bench model_quality` (docs/TRAINING.md).
"""

import argparse
import math
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from lab.datasets import TINY_IMAGENET_CLASSES, TINY_IMAGENET_TRAIN, tiny_imagenet_train
from lookalike.embedding import ModelInfo
from lookalike.images import load_image, to_tensor
from model_export.export_onnx import INPUT_NAME

MODES = {"static": "int8", "dynamic": "int8dyn"}
CALIBRATION_BATCH = 16


class _Calibration(CalibrationDataReader):
    """Batches of training images as the model's metadata says to prepare them."""

    def __init__(self, info: ModelInfo, train_tar: Path, count: int) -> None:
        per_class = math.ceil(count / TINY_IMAGENET_CLASSES)
        images = [image for _, image in tiny_imagenet_train(train_tar, per_class=per_class)]
        size = info.input_size
        pixels = np.stack(
            [
                to_tensor(load_image(image.data, min_side=size), size, info.mean, info.std, info.resize)
                for image in images[:: max(1, len(images) // count)][:count]
            ]
        )
        self._batches = iter(np.array_split(pixels, max(1, len(pixels) // CALIBRATION_BATCH)))

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: batch}


def quantize(
    model_path: Path, output: Path, mode: str = "static", calibration: int = 256, train_tar: Path = TINY_IMAGENET_TRAIN
) -> str:
    """Write the int8 model to `output`; returns its version."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {tuple(MODES)}, not {mode!r}")
    source = onnx.load(model_path)
    metadata = {prop.key: prop.value for prop in source.metadata_props}
    info = ModelInfo.from_metadata(metadata, model_path)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(model_path), str(prepared))
        if mode == "static":
            quantize_static(
                prepared,
                output,
                _Calibration(info, train_tar, calibration),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
            )
        else:
            quantize_dynamic(prepared, output, weight_type=QuantType.QInt8)
    quantized = onnx.load(output)
    version = f"{info.version}-{MODES[mode]}"
    onnx.helper.set_model_props(quantized, {**metadata, "version": version})
    onnx.save(quantized, output)
    return version


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--output", type=Path, default=None, help="default: MODEL with -int8 before .onnx")
    parser.add_argument("--mode", choices=tuple(MODES), default="static")
    parser.add_argument("--calibration", type=int, default=256, help="training images that calibrate activations")
    parser.add_argument("--train-tar", type=Path, default=TINY_IMAGENET_TRAIN)
    args = parser.parse_args(argv)
    output = args.output or args.model.with_name(f"{args.model.stem}-{MODES[args.mode]}.onnx")
    version = quantize(args.model, output, args.mode, args.calibration, args.train_tar)
    print(f"wrote {output} (model version {version})")


if __name__ == "__main__":
    main()
