"""In-process search latency at a 10k-image gallery: p50/p99 per query, and where the time goes.

    python -m lab bench search_latency [--gallery 10000] [--queries 200] [--method auto]

The gallery is Tiny ImageNet's validation split (real photos), indexed once into a store under
--workdir and reused on later runs. Each query is a gallery image cropped and re-encoded, searched
one at a time, as the HTTP API serves them: decode + embed + k-NN + re-rank.
"""

import io
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from lab.bench import argument_parser
from lookalike.cli import progress_bar
from lookalike.paths import default_model_path
from lab.datasets import TINY_IMAGENET_VAL, tiny_imagenet_val
from lookalike.embedding import Embedder
from lookalike.images import load_image
from lookalike.indexing import Indexer
from lookalike.search import Query, SearchService
from lookalike.sources import FolderSource
from lookalike.stores.faiss import FaissStore


def percentiles(milliseconds: list[float]) -> str:
    p50, p99 = np.percentile(milliseconds, [50, 99])
    return f"p50 {p50:6.1f} ms   p99 {p99:6.1f} ms"


def build_gallery(workdir: Path, size: int, embedder: Embedder, method: str) -> FaissStore:
    gallery = workdir / f"gallery-{size}"
    if not gallery.is_dir():
        gallery.mkdir(parents=True)
        for image in tiny_imagenet_val(TINY_IMAGENET_VAL, size):
            (gallery / image.name).write_bytes(image.data)
    store = FaissStore(workdir / f"store-{size}-{method}", method=method)
    started = time.perf_counter()
    with progress_bar() as on_progress:
        report = Indexer(FolderSource(gallery), embedder, store).sync(on_progress=on_progress)
    if report.indexed:
        seconds = time.perf_counter() - started
        print(f"indexed {len(report.indexed)} images in {seconds:.0f} s ({len(report.indexed) / seconds:.0f} images/s)")
    return store


def crop_queries(count: int, seed: int = 7) -> list[bytes]:
    rng = np.random.default_rng(seed)
    queries = []
    for image in tiny_imagenet_val(TINY_IMAGENET_VAL, count):
        with Image.open(io.BytesIO(image.data)) as decoded:
            x0, y0 = rng.integers(0, 16, size=2)
            buffer = io.BytesIO()
            decoded.convert("RGB").crop((x0, y0, x0 + 48, y0 + 48)).save(buffer, format="JPEG", quality=90)
        queries.append(buffer.getvalue())
    return queries


def main(argv: Sequence[str] | None = None) -> None:
    parser = argument_parser(__file__, __doc__)
    parser.add_argument("--gallery", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--method", default="auto")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "lookalike-bench")
    args = parser.parse_args(argv)

    embedder = Embedder(default_model_path())
    store = build_gallery(args.workdir, args.gallery, embedder, args.method)
    service = SearchService(embedder, store)
    queries = crop_queries(args.queries)
    service.search_one(Query(queries[0]), k=args.k)  # warm-up

    total, embed = [], []
    for data in queries:
        started = time.perf_counter()
        service.search_one(Query(data), k=args.k)
        total.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        embedder.embed_images([load_image(data, min_side=embedder.info.input_size)])
        embed.append((time.perf_counter() - started) * 1000)
    knn = [whole - part for whole, part in zip(total, embed)]

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; gallery {store.count()} images, method {args.method}, k={args.k}, {len(queries)} queries")
    print(f"search (decode+embed+knn+rerank)  {percentiles(total)}")
    print(f"  decode + embed                  {percentiles(embed)}")
    print(f"  knn + rerank (the difference)   {percentiles(knn)}")


if __name__ == "__main__":
    main()
