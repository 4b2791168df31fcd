"""Build the three Lambda layer archives the Pulumi program deploys: core, deps and model.

    python -m layers.build --out build/layers [--model PATH]

- `core.zip`: the `lookalike` package at python/lookalike (Lambda puts /opt/python on sys.path),
  less the modules of the embedded default that need what the deps layer does not carry (FAISS,
  watchdog, tqdm): no function runs them, and every module the layer holds imports there.
- `deps.zip`: the wheels pinned in layers/requirements-lambda.txt, downloaded for Lambda's platform
  (`pip download --platform manylinux2014_x86_64 --python-version 3.11 --implementation cp
  --only-binary=:all:`) and unpacked at python/. Nothing is compiled or installed here, so the
  archive is the same whatever machine builds it.
- `model.zip`: the ONNX embedder at model/embedder.onnx, i.e. /opt/model/embedder.onnx.

Archives are written deterministically (sorted entries, fixed timestamps), so rebuilding unchanged
inputs yields identical bytes and `pulumi up` publishes no new layer version. Downloaded wheels are
kept in a cache folder; a rebuild with the same pins works offline.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lookalike.paths import default_model_path

# The one place that names Lambda's platform; infra's functions and layers must match it
# (tests/test_infra.py checks that they do).
LAMBDA_RUNTIME = "python3.11"
LAMBDA_ARCHITECTURE = "x86_64"
PIP_PLATFORM = "manylinux2014_x86_64"
PYTHON_VERSION = "3.11"

LAYER_NAMES = ("core", "deps", "model")
# The embedded default's own modules (paths relative to the package; a trailing / is a folder):
# the command line, the drop-folder watcher, the FAISS store, the record tying it to its gallery
# folder, and the reindex that swaps its folders.
EMBEDDED_ONLY = ("cli.py", "watch.py", "reindexing.py", "workspace.py", "stores/faiss/")
MODEL_ARCNAME = "model/embedder.onnx"

# AWS Lambda quotas: a function's code plus all its layers may unzip to at most 250 MB
# (262,144,000 bytes), and an archive uploaded directly (not through S3) may be at most 50 MB zipped.
UNZIPPED_LIMIT_BYTES = 262_144_000
DIRECT_UPLOAD_LIMIT_BYTES = 50 * 1024 * 1024

LAYERS_DIR = Path(__file__).resolve().parent
REQUIREMENTS = LAYERS_DIR / "requirements-lambda.txt"
DEFAULT_WHEELS_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lookalike" / "wheels"

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_WHEEL_LIBRARY_DIRS = ("purelib", "platlib")


@dataclass(frozen=True)
class LayerArchive:
    name: str
    path: Path
    zipped_bytes: int
    unzipped_bytes: int


class _ArchiveWriter:
    """A zip whose bytes depend only on the names, contents and modes written into it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.unzipped_bytes = 0
        self._names: set[str] = set()
        self._zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6)

    def add(self, arcname: str, data: bytes, executable: bool = False) -> None:
        if arcname in self._names:
            raise ValueError(f"{self.path.name}: two sources write {arcname}")
        self._names.add(arcname)
        info = zipfile.ZipInfo(arcname, date_time=_FIXED_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = (0o100755 if executable else 0o100644) << 16
        self._zip.writestr(info, data)
        self.unzipped_bytes += len(data)

    def close(self, name: str) -> LayerArchive:
        self._zip.close()
        return LayerArchive(name, self.path, self.path.stat().st_size, self.unzipped_bytes)


def build_core(out: Path, package: Path = LAYERS_DIR / "lookalike") -> LayerArchive:
    """The lookalike package as source files (no bytecode: Lambda compiles on first import)."""
    writer = _ArchiveWriter(out / "core.zip")
    for path in sorted(package.rglob("*")):
        relative = path.relative_to(package).as_posix()
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc" and not is_embedded_only(relative):
            writer.add(f"python/{package.name}/{relative}", path.read_bytes())
    return writer.close("core")


def is_embedded_only(relative_path: str) -> bool:
    """Whether a file of the package (a path relative to it) stays out of the core layer."""
    return any(relative_path == name or relative_path.startswith(name) for name in EMBEDDED_ONLY)


def build_model(out: Path, model: Path) -> LayerArchive:
    if not model.is_file():
        raise FileNotFoundError(f"no model at {model}: build it with `python -m model_export.export_onnx`")
    writer = _ArchiveWriter(out / "model.zip")
    writer.add(MODEL_ARCNAME, model.read_bytes())
    return writer.close("model")


def build_deps(out: Path, requirements: Path = REQUIREMENTS, wheels_cache: Path = DEFAULT_WHEELS_CACHE) -> LayerArchive:
    """Unpack exactly the wheels the pins resolve to (not everything the cache has ever held)."""
    writer = _ArchiveWriter(out / "deps.zip")
    with tempfile.TemporaryDirectory(prefix="lookalike-wheels-") as selected:
        wheels = download_wheels(requirements, wheels_cache, Path(selected))
        for number, wheel in enumerate(wheels, 1):
            print(f"  [{number}/{len(wheels)}] {wheel.name}", flush=True)
            for arcname, data, executable in _wheel_files(wheel):
                writer.add(f"python/{arcname}", data, executable)
    return writer.close("deps")


def download_wheels(requirements: Path, wheels_cache: Path, selected: Path) -> list[Path]:
    """Copy the pinned wheels from the cache into `selected`, downloading into the cache first
    when the cache lacks one. Returns the selected wheels, sorted."""
    wheels_cache.mkdir(parents=True, exist_ok=True)
    offline = _pip_download(requirements, selected, ["--no-index", "--find-links", str(wheels_cache)], quiet=True)
    if offline.returncode != 0:
        print(f"  downloading wheels for {PIP_PLATFORM} / cp{PYTHON_VERSION.replace('.', '')} into {wheels_cache}", flush=True)
        online = _pip_download(requirements, wheels_cache, [], quiet=False)
        if online.returncode != 0:
            raise RuntimeError(f"pip download failed for {requirements} (exit {online.returncode})")
        offline = _pip_download(requirements, selected, ["--no-index", "--find-links", str(wheels_cache)], quiet=True)
        if offline.returncode != 0:
            raise RuntimeError(f"the downloaded wheels do not satisfy {requirements}:\n{offline.stdout}")
    else:
        print(f"  all pinned wheels found in {wheels_cache}", flush=True)
    return sorted(selected.glob("*.whl"))


def _pip_download(requirements: Path, dest: Path, extra: list[str], quiet: bool) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-m", "pip", "download",
        "--no-deps",
        "--only-binary=:all:",
        "--platform", PIP_PLATFORM,
        "--python-version", PYTHON_VERSION,
        "--implementation", "cp",
        "--requirement", str(requirements),
        "--dest", str(dest),
        *extra,
    ]  # fmt: skip
    if quiet:
        return subprocess.run(command, capture_output=True, text=True)
    return subprocess.run(command)


def _wheel_files(wheel: Path) -> Iterator[tuple[str, bytes, bool]]:
    """A wheel's files as an installer would lay them out in site-packages: everything at the
    root, plus the contents of `<dist>.data/purelib` and `platlib` (scripts, headers and data
    files have no place in a layer)."""
    with zipfile.ZipFile(wheel) as archive:
        for info in sorted(archive.infolist(), key=lambda item: item.filename):
            if info.is_dir():
                continue
            parts = info.filename.split("/")
            if parts[0].endswith(".data"):
                if len(parts) < 3 or parts[1] not in _WHEEL_LIBRARY_DIRS:
                    continue
                parts = parts[2:]
            executable = bool((info.external_attr >> 16) & 0o111)
            yield "/".join(parts), archive.read(info), executable


def build_all(out: Path, model: Path, requirements: Path = REQUIREMENTS, wheels_cache: Path = DEFAULT_WHEELS_CACHE) -> list[LayerArchive]:
    out.mkdir(parents=True, exist_ok=True)
    print("core: the lookalike package", flush=True)
    core = build_core(out)
    print(f"deps: {requirements.name}", flush=True)
    deps = build_deps(out, requirements, wheels_cache)
    print(f"model: {model}", flush=True)
    return [core, deps, build_model(out, model)]


def size_problems(layers: list[LayerArchive]) -> list[str]:
    """What would make AWS refuse these archives (empty when they fit)."""
    problems = [
        f"{layer.path.name} is {_mb(layer.zipped_bytes)} zipped, over the {_mb(DIRECT_UPLOAD_LIMIT_BYTES)} "
        "Lambda accepts by direct upload; upload it through S3 instead"
        for layer in layers
        if layer.zipped_bytes > DIRECT_UPLOAD_LIMIT_BYTES
    ]
    unzipped = sum(layer.unzipped_bytes for layer in layers)
    if unzipped > UNZIPPED_LIMIT_BYTES:
        problems.append(
            f"the layers unzip to {_mb(unzipped)}, over Lambda's 250 MB ({UNZIPPED_LIMIT_BYTES:,} bytes) limit "
            "for a function and all its layers"
        )
    return problems


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def report(layers: list[LayerArchive]) -> str:
    lines = [f"{'layer':<8}{'zipped':>12}{'unzipped':>12}"]
    lines += [f"{layer.name:<8}{_mb(layer.zipped_bytes):>12}{_mb(layer.unzipped_bytes):>12}" for layer in layers]
    unzipped = sum(layer.unzipped_bytes for layer in layers)
    lines.append(
        f"{'total':<8}{_mb(sum(layer.zipped_bytes for layer in layers)):>12}{_mb(unzipped):>12}"
        f"  ({unzipped / UNZIPPED_LIMIT_BYTES:.0%} of Lambda's 250 MB unzipped limit,"
        " before the function code)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m layers.build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("build/layers"), help="folder for core.zip, deps.zip, model.zip")
    parser.add_argument("--model", type=Path, default=None, help="ONNX embedder (default: the configured model path)")
    parser.add_argument("--requirements", type=Path, default=REQUIREMENTS, help="pinned runtime wheels")
    parser.add_argument("--wheels-cache", type=Path, default=DEFAULT_WHEELS_CACHE, help="where downloaded wheels are kept")
    args = parser.parse_args(argv)
    layers = build_all(args.out, args.model or default_model_path(), args.requirements, args.wheels_cache)
    print(report(layers))
    problems = size_problems(layers)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
