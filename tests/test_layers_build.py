"""The Lambda layers, built for real and used the way Lambda uses them.

The archives are built once per session (wheels for manylinux2014_x86_64 / cp311 come from the
cache in ~/.cache/lookalike/wheels after the first run), unpacked into a folder standing in for
/opt, and imported by a clean interpreter: `-I -S` leaves out every site-packages, so only the
standard library, the layers and, after them, what the runtime itself provides (boto3, botocore,
s3transfer, in /var/runtime) are importable, as on Lambda's python3.11 on x86_64.
"""

import hashlib
import json
import platform
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import boto3
import botocore
import numpy as np
import pytest
import s3transfer
from PIL import Image

from layers.build import (
    LAMBDA_ARCHITECTURE,
    LAMBDA_RUNTIME,
    LAYERS_DIR,
    MODEL_ARCNAME,
    build_all,
    is_embedded_only,
    build_core,
    build_model,
    size_problems,
)
from lookalike.images import load_image

# Lambda's interpreter for the runtime the layers target.
LAMBDA_PYTHON = tuple(int(part) for part in LAMBDA_RUNTIME.removeprefix("python").split("."))

IMPORT_AND_EMBED = """
import json, sys
opt, runtime, image_path = sys.argv[1:4]
sys.path.insert(0, opt + "/python")
sys.path.append(runtime)
import importlib, pathlib, traceback
import numpy, onnxruntime, PIL, opensearchpy
failed = {}
package = pathlib.Path(opt, "python")
for path in sorted(package.joinpath("lookalike").rglob("*.py")):
    name = ".".join(path.relative_to(package).with_suffix("").parts).removesuffix(".__init__")
    try:
        importlib.import_module(name)
    except Exception:
        failed[name] = traceback.format_exc(limit=-1)
from lookalike.embedding import Embedder
from lookalike.images import load_image
modules = {name: module.__file__ for name, module in sorted(sys.modules.items()) if getattr(module, "__file__", None)}
vector = Embedder(opt + "/model/embedder.onnx", threads=1).embed_images([load_image(open(image_path, "rb").read())])[0]
print(json.dumps({"modules": modules, "failed": failed, "vector": vector.tolist(), "onnxruntime": onnxruntime.__version__}))
"""


def _lambda_like_python() -> str:
    """This interpreter when it is the runtime's version on the runtime's architecture, else python3.11."""
    if platform.machine() != LAMBDA_ARCHITECTURE:
        pytest.skip(f"the layers hold {LAMBDA_ARCHITECTURE} binaries; this machine is {platform.machine()}")
    if sys.version_info[:2] == LAMBDA_PYTHON:
        return sys.executable
    other = shutil.which(LAMBDA_RUNTIME)
    if other is None:
        pytest.skip(f"no {LAMBDA_RUNTIME} interpreter here to import the cp{''.join(map(str, LAMBDA_PYTHON))} wheels")
    return other


@pytest.fixture(scope="session")
def built_layers(tmp_path_factory, model_path):
    return build_all(tmp_path_factory.mktemp("layers"), model_path)


@pytest.fixture(scope="session")
def opt(built_layers, tmp_path_factory) -> Path:
    """The layers unpacked as Lambda unpacks them, all into one /opt."""
    opt = tmp_path_factory.mktemp("opt")
    for layer in built_layers:
        with zipfile.ZipFile(layer.path) as archive:
            archive.extractall(opt)
    return opt


@pytest.fixture(scope="session")
def runtime(tmp_path_factory) -> Path:
    """What Lambda's runtime provides besides the standard library (/var/runtime), and the deps
    layer therefore leaves out: the X-Ray SDK that Tracer loads imports botocore."""
    runtime = tmp_path_factory.mktemp("runtime")
    for package in (boto3, botocore, s3transfer):
        (runtime / package.__name__).symlink_to(Path(package.__file__).parent)
    return runtime


@pytest.fixture(scope="session")
def in_lambda_python(opt, runtime, tmp_path_factory):
    """What a clean interpreter with only the layers and the runtime imports, and the vector it
    computes for an image."""
    image_path = tmp_path_factory.mktemp("image") / "query.jpg"
    _test_image().save(image_path, quality=92)
    result = subprocess.run(
        [_lambda_like_python(), "-I", "-S", "-c", IMPORT_AND_EMBED, str(opt), str(runtime), str(image_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"importing from the layers failed:\n{result.stderr[-3000:]}"
    return json.loads(result.stdout), image_path


def _test_image() -> Image.Image:
    """A photo-like image: smooth gradients with an edge, so the embedding is not degenerate."""
    y, x = np.mgrid[0:180, 0:240]
    pixels = np.stack([x * 255 // 240, y * 255 // 180, ((x // 40 + y // 45) % 2) * 200], axis=-1).astype(np.uint8)
    return Image.fromarray(pixels)


def test_layers_fit_lambdas_size_limits(built_layers):
    problems = size_problems(built_layers)
    assert not problems, "; ".join(problems)


def test_layers_put_files_where_lambda_looks(opt):
    expected = ["python/lookalike/__init__.py", "python/lookalike/http/app.py", "python/numpy/__init__.py", MODEL_ARCNAME]
    missing = [path for path in expected if not (opt / path).is_file()]
    assert not missing, f"missing from the unpacked layers: {missing}"


def test_deps_leave_out_what_lambda_provides_or_never_runs(opt):
    present = [name for name in ("boto3", "botocore", "torch", "faiss", "sympy", "grpc") if (opt / "python" / name).exists()]
    assert not present, f"the deps layer carries {present}"


def test_the_indexing_core_imports_without_the_command_lines_progress_bars(opt):
    """tqdm draws the command line's bars and is not shipped: the core the indexer function runs
    reports progress through a callback and must import without it."""
    assert not (opt / "python" / "tqdm").exists(), "the deps layer carries tqdm"
    code = "import sys; sys.path.insert(0, sys.argv[1] + '/python'); import lookalike.indexing"
    result = subprocess.run(
        [_lambda_like_python(), "-I", "-S", "-c", code, str(opt)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"lookalike.indexing does not import from the layers:\n{result.stderr[-3000:]}"


def test_archives_are_byte_for_byte_reproducible(tmp_path, model_path):
    package = shutil.copytree(LAYERS_DIR / "lookalike", tmp_path / "src" / "lookalike")  # a snapshot: the tree may change
    digests = []
    for attempt in ("first", "second"):
        out = tmp_path / attempt
        out.mkdir()
        archives = (build_core(out, package), build_model(out, model_path))
        digests.append([hashlib.sha256(archive.path.read_bytes()).hexdigest() for archive in archives])
    assert digests[0] == digests[1], "rebuilding unchanged inputs changes the archives (pulumi would publish new layers)"


def test_clean_python_imports_everything_from_the_layers(in_lambda_python, opt):
    result, _ = in_lambda_python
    wanted = ["numpy", "onnxruntime", "PIL", "opensearchpy", "pydantic", "aws_lambda_powertools", "lookalike.search", "lookalike.http.app"]
    outside = {name: result["modules"][name] for name in wanted if not result["modules"][name].startswith(str(opt))}
    assert not outside, f"imported from outside the layers: {outside}"


def test_every_module_the_core_layer_holds_imports_there(in_lambda_python, opt):
    result, _ = in_lambda_python
    held = sorted(opt.joinpath("python", "lookalike").rglob("*.py"))
    assert len(held) > 20, f"the core layer holds only {len(held)} modules"
    assert not result["failed"], "modules of the core layer that do not import there:\n" + "\n".join(
        f"{name}: {error}" for name, error in result["failed"].items()
    )


def test_the_core_layer_holds_serving_code_only(built_layers):
    """No lab, trainer or embedded-only module, and every other module of the package."""
    (core,) = [layer for layer in built_layers if layer.name == "core"]
    with zipfile.ZipFile(core.path) as archive:
        held = {name.removeprefix("python/lookalike/") for name in archive.namelist()}
    assert all(name.startswith("python/lookalike/") for name in archive.namelist()), "the core layer holds other packages"
    package = LAYERS_DIR / "lookalike"
    sources = {path.relative_to(package).as_posix() for path in package.rglob("*.py") if "__pycache__" not in path.parts}
    assert {name for name in sources if is_embedded_only(name)} & held == set()
    assert {name for name in sources if not is_embedded_only(name)} <= held
    assert {"cli.py", "watch.py", "stores/faiss/store.py"} <= sources - held
    lab_modules = {path.name for path in (LAYERS_DIR.parent / "lab").glob("*.py")} - {"__init__.py", "__main__.py"}
    assert not {Path(name).name for name in held} & lab_modules, "a lab module is in the core layer"


def test_layer_model_embeds_like_the_local_runtime(in_lambda_python, embedder):
    """The deps layer's onnxruntime (the newest that runs on Amazon Linux 2) gives the local vectors."""
    result, image_path = in_lambda_python
    local = embedder.embed_images([load_image(image_path.read_bytes())])[0]
    in_layers = np.asarray(result["vector"], dtype=np.float32)
    assert in_layers.shape == local.shape, f"the layers' model gives {in_layers.shape}, locally {local.shape}"
    cosine = float(in_layers @ local)
    assert cosine > 0.9999, f"onnxruntime {result['onnxruntime']} in the layers embeds differently: cosine {cosine:.6f}"
