"""Do region vectors let an object query find the photos it is only a part of, and at what cost?

    python -m lab bench region_vectors [--objects 300] [--category-gallery 2000] [--category-queries 200]

Two galleries, each indexed twice by the product's Indexer into a
fresh FaissStore (exact search): without region vectors, and with them (`Indexer(regions=True)`,
`lookalike index --regions`).

1. Fragments inside gallery images. Queries: Tiny ImageNet validation images val_0 ... (the
   object). Gallery: one composite per query, the object pasted small (10-30% of the area) into
   a random crop of a real scene (lab.composites: 39 interiors, ~35 mvtb-data street, campus
   and building photos), plus distractors: the plain scenes themselves and as many other
   validation images as there are queries. The query's composite is its only relevant image.
   Metrics: MRR@10, recall@1 and recall@10.
2. Plain category retrieval, which region vectors must not wreck: gallery val images starting
   at val_1000, queries val_0 ...; a result is relevant when it has the query's class.
   Metrics: precision@10 and the top-1 hit rate.

Searches go through SearchService (the ranking the API serves, near-duplicate collapse included).
Cost: stored vectors, the FAISS index file's size (what a searcher holds in memory; the SQLite
sidecar holds one more float32 copy) and indexing time, wall and CPU (all threads), here.
"""

import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lab.bench import argument_parser
from lab.composites import SCENE_SIDE, encode_jpeg, load_scenes, scene_paths, composites
from lookalike.cli import progress_bar
from lookalike.paths import default_model_path
from lab.datasets import TINY_IMAGENET_VAL, LabelledImage, tiny_imagenet_val
from lookalike.embedding import Embedder
from lab import metrics
from lookalike.indexing import Indexer
from lookalike.search import Query, SearchService
from lookalike.sources import FolderSource
from lookalike.stores.faiss import FaissStore

CATEGORY_GALLERY_START = 1000
K = 10
SEED = 2026


@dataclass
class Index:
    service: SearchService
    vectors: int
    index_bytes: int  # the FAISS index file: what a search process holds in memory
    seconds: float
    cpu_seconds: float  # all threads; steadier than wall time on a shared machine


def build(gallery: Path, store_path: Path, embedder: Embedder, regions: bool) -> Index:
    store = FaissStore(store_path, method="flat")
    started, started_cpu = time.perf_counter(), time.process_time()
    with progress_bar() as on_progress:
        Indexer(FolderSource(gallery), embedder, store, regions=regions).sync(on_progress=on_progress)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - started_cpu
    index_bytes = sum(path.stat().st_size for path in store_path.glob("index-*.faiss"))
    return Index(SearchService(embedder, store), store._state.index.ntotal, index_bytes, seconds, cpu_seconds)


def ranked(service: SearchService, queries: list[bytes], desc: str) -> list[list[str]]:
    results = []
    for start in tqdm(range(0, len(queries), 32), desc=desc, unit="batch", file=sys.stderr):
        for result in service.search([Query(data) for data in queries[start : start + 32]], k=K):
            results.append([hit.id for hit in result.hits])
    return results


def write(folder: Path, files: dict[str, bytes]) -> None:
    for key, data in files.items():
        path = folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def cost_line(name: str, index: Index, images: int) -> str:
    return (
        f"  {name:<16} {index.vectors:>6} vectors ({index.vectors / images:.2f}/image), index file "
        f"{index.index_bytes / 2**20:5.1f} MiB; indexing {index.seconds:6.1f} s wall, "
        f"{1000 * index.cpu_seconds / images:4.0f} ms CPU/image"
    )


def fragments_benchmark(
    work: Path, embedder: Embedder, objects: list[LabelledImage], distractors: list[LabelledImage]
) -> None:
    made = composites([image.data for image in objects], SEED)
    scenes = load_scenes(scene_paths())
    for scene in scenes:
        scene.thumbnail((SCENE_SIDE, SCENE_SIDE))
    gallery = work / "fragments"
    write(gallery, {f"composites/{i:04d}.jpg": c.data for i, c in enumerate(made)})
    write(gallery, {f"scenes/{i:03d}.jpg": encode_jpeg(scene) for i, scene in enumerate(scenes)})
    write(gallery, {f"objects/{image.name}": image.data for image in distractors})
    images = len(made) + len(scenes) + len(distractors)
    print(
        f"\n1. fragments inside gallery images: {len(objects)} object queries; gallery {images} images "
        f"({len(made)} composites, {len(scenes)} plain scenes, {len(distractors)} other objects)"
    )
    rows, costs = [], []
    for regions in (False, True):
        name = "with regions" if regions else "whole image only"
        index = build(gallery, work / f"fragments-store-{regions}", embedder, regions)
        results = ranked(index.service, [image.data for image in objects], name)
        found = [[int(hit == f"composites/{i:04d}.jpg") for hit in hits] for i, hits in enumerate(results)]
        mrr = metrics.mean_reciprocal_rank(found)
        at1 = np.mean([metrics.recall_at_k(ranked, 1, 1) for ranked in found])
        at10 = np.mean([metrics.recall_at_k(ranked, 1, 10) for ranked in found])
        rows.append(f"  {name:<16} MRR@10 {mrr:.3f}   recall@1 {at1:.1%}   recall@10 {at10:.1%}")
        costs.append(cost_line(name, index, images))
    print("\n".join(rows))
    print("  cost:")
    print("\n".join(costs))


def category_benchmark(
    work: Path, embedder: Embedder, gallery_images: list[LabelledImage], queries: list[LabelledImage]
) -> None:
    gallery = work / "category"
    write(gallery, {image.name: image.data for image in gallery_images})
    labels = {image.name: image.label for image in gallery_images}
    print(
        f"\n2. category retrieval: {len(queries)} queries, gallery {len(gallery_images)} Tiny ImageNet "
        f"validation images; relevant = same class"
    )
    rows, costs = [], []
    for regions in (False, True):
        name = "with regions" if regions else "whole image only"
        index = build(gallery, work / f"category-store-{regions}", embedder, regions)
        results = ranked(index.service, [image.data for image in queries], name)
        same_class = [[int(labels[hit] == query.label) for hit in hits] for query, hits in zip(queries, results)]
        precision = np.mean([metrics.precision_at_k(ranked, 10) for ranked in same_class])
        top1 = np.mean([metrics.precision_at_k(ranked, 1) for ranked in same_class])
        rows.append(f"  {name:<16} precision@10 {precision:.1%}   top-1 same class {top1:.1%}")
        costs.append(cost_line(name, index, len(gallery_images)))
    print("\n".join(rows))
    print("  cost:")
    print("\n".join(costs))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argument_parser(__file__, __doc__)
    parser.add_argument("--objects", type=int, default=300, help="object queries and composites (default 300)")
    parser.add_argument("--category-gallery", type=int, default=2000, help="category gallery size (default 2000)")
    parser.add_argument("--category-queries", type=int, default=200, help="category queries (default 200)")
    parser.add_argument("--model", type=Path, default=None, help=f"ONNX embedder (default {default_model_path()})")
    args = parser.parse_args(argv)
    if 2 * args.objects > CATEGORY_GALLERY_START or args.category_queries > CATEGORY_GALLERY_START:
        parser.error(f"queries and distractors come from the first {CATEGORY_GALLERY_START} validation images")
    embedder = Embedder(args.model or default_model_path())
    val = list(tiny_imagenet_val(TINY_IMAGENET_VAL, CATEGORY_GALLERY_START + args.category_gallery))
    work = Path(tempfile.mkdtemp(prefix="lookalike-regions-"))
    try:
        fragments_benchmark(work, embedder, val[: args.objects], val[args.objects : 2 * args.objects])
        category_benchmark(work, embedder, val[CATEGORY_GALLERY_START:], val[: args.category_queries])
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
