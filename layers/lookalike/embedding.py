"""Pixels in, unit-length vectors out: the ONNX embedder under onnxruntime.

Everything needed to prepare the model's input (size, normalization, resize mode) is read from
the model file's metadata, written there by model_export/export_onnx.py, so that serving never
repeats a constant that a rebuilt model could change. Serving imports no torch: onnxruntime,
numpy and Pillow only.

The model has a second output beside the vector: its activation map, where in the picture the
last feature map fires (lookalike.proposals turns it into suggested fragments). Both come from
one forward pass, so asking for the map with the vector costs almost nothing.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state
from PIL import Image

from lookalike.images import RESIZE_MODES, to_tensor

_REQUIRED_KEYS = ("name", "version", "input_size", "mean", "std", "dim", "resize")
EMBEDDING_OUTPUT = "embedding"
ACTIVATION_OUTPUT = "activation"
# What onnxruntime raises for a file that is no loadable model (text, a truncated or foreign
# protobuf, a graph it cannot run); its errors share no base class below Exception.
_LOAD_ERRORS = (
    ort_state.InvalidProtobuf,
    ort_state.InvalidGraph,
    ort_state.InvalidArgument,
    ort_state.Fail,
    ort_state.NoModel,
    ort_state.NotImplemented,
    ort_state.RuntimeException,
)


class InvalidModelError(ValueError):
    """The file is not an ONNX model Lookalike can embed with: a configuration mistake the
    command line reports in one line, unlike a bad request."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    dim: int
    resize: str  # how to_tensor fits an image to input_size x input_size

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str], source: str | Path = "model") -> "ModelInfo":
        """Parse the export's metadata_props; a model without them was not built for Lookalike."""
        missing = [key for key in _REQUIRED_KEYS if key not in metadata]
        if missing:
            raise InvalidModelError(
                f"{source} lacks the metadata Lookalike needs ({', '.join(missing)}); "
                "build the model with `python -m model_export.export_onnx`"
            )
        if metadata["resize"] not in RESIZE_MODES:
            raise InvalidModelError(f"{source}: metadata resize={metadata['resize']!r} is not one of {RESIZE_MODES}")
        return cls(
            name=metadata["name"],
            version=metadata["version"],
            input_size=int(metadata["input_size"]),
            mean=_channels(metadata["mean"], "mean", source),
            std=_channels(metadata["std"], "std", source),
            dim=int(metadata["dim"]),
            resize=metadata["resize"],
        )


def _channels(value: str, key: str, source: str | Path) -> tuple[float, float, float]:
    numbers = tuple(float(part) for part in value.split(","))
    if len(numbers) != 3:
        raise InvalidModelError(f"{source}: metadata {key}={value!r} must hold one value per RGB channel")
    return numbers


class Embedder:
    """One onnxruntime session on the CPU; `embed` may be called from several threads at once."""

    def __init__(self, model_path: str | Path, threads: int | None = None) -> None:
        model_path = Path(model_path)
        if not model_path.is_file():
            raise FileNotFoundError(f"no model at {model_path}: build it with `python -m model_export.export_onnx`")
        options = ort.SessionOptions()
        # Deterministic kernels, so that re-indexing an image reproduces its vector exactly.
        options.use_deterministic_compute = True
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        except _LOAD_ERRORS as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise InvalidModelError(f"{model_path} is not an ONNX model onnxruntime can load: {reason}") from error
        self.info = ModelInfo.from_metadata(self._session.get_modelmeta().custom_metadata_map, model_path)
        self._input_name = self._session.get_inputs()[0].name
        self._output_shapes = {output.name: output.shape for output in self._session.get_outputs()}

    @property
    def has_activation_maps(self) -> bool:
        """False for a model exported before the activation output existed: it embeds, it proposes nothing."""
        return ACTIVATION_OUTPUT in self._output_shapes

    def embed(self, batch: np.ndarray) -> np.ndarray:
        """(n, 3, S, S) normalized pixels -> (n, dim) float32 rows of unit length."""
        (vectors,) = self._run(batch, (EMBEDDING_OUTPUT,))
        return vectors

    def embed_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """RGB images of any size -> (n, dim), prepared as the model's metadata says."""
        (vectors,) = self._run_images(images, batch_size, (EMBEDDING_OUTPUT,))
        return vectors

    def activation_maps(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """RGB images -> (n, h, w) non-negative maps over the model's input, squashed like the image."""
        (maps,) = self._run_images(images, batch_size, (ACTIVATION_OUTPUT,))
        return maps

    def embed_images_with_maps(
        self, images: Sequence[Image.Image], batch_size: int = 32
    ) -> tuple[np.ndarray, np.ndarray]:
        """(vectors, maps) from one forward pass per batch: what indexing with regions needs."""
        vectors, maps = self._run_images(images, batch_size, (EMBEDDING_OUTPUT, ACTIVATION_OUTPUT))
        return vectors, maps

    def _run(self, batch: np.ndarray, outputs: Sequence[str]) -> list[np.ndarray]:
        size = self.info.input_size
        if batch.ndim != 4 or batch.shape[1:] != (3, size, size):
            raise ValueError(f"embed takes a (n, 3, {size}, {size}) batch, got shape {batch.shape}")
        missing = [name for name in outputs if name not in self._output_shapes]
        if missing:
            raise ValueError(
                f"the model has no {', '.join(missing)} output: rebuild it with `python -m model_export.export_onnx`"
            )
        if len(batch) == 0:
            return [np.zeros((0, *self._output_shapes[name][1:]), dtype=np.float32) for name in outputs]
        pixels = np.ascontiguousarray(batch, dtype=np.float32)
        return self._session.run(list(outputs), {self._input_name: pixels})

    def _run_images(self, images: Sequence[Image.Image], batch_size: int, outputs: Sequence[str]) -> list[np.ndarray]:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, not {batch_size}")
        info = self.info
        chunks = [self._run(np.zeros((0, 3, info.input_size, info.input_size), dtype=np.float32), outputs)]
        for start in range(0, len(images), batch_size):
            batch = np.stack(
                [
                    to_tensor(image, info.input_size, info.mean, info.std, info.resize)
                    for image in images[start : start + batch_size]
                ]
            )
            chunks.append(self._run(batch, outputs))
        return [np.concatenate(parts) for parts in zip(*chunks)]
