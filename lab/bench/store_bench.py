"""Exact (Flat inner product) vs HNSW search time on random unit vectors: where AUTO_EXACT_LIMIT comes from.

    python -m lab bench store_bench [--sizes 5000 10000 20000 50000 100000] [--dim 1280] [--queries 200]

Queries are gallery vectors plus noise (so each has a true nearest neighbour), searched one at a
time as the HTTP server does (median ms; "flat 1thr" with FAISS limited to one OpenMP thread, which
on small VMs avoids a thread wake-up that costs more than the scan), and also as one batch.
Random vectors in 1280 dimensions are the hardest case for HNSW recall: recall@1 (finding the
planted neighbour) is the meaningful column, since the other nine exact neighbours of a random
vector are near-ties at cosine ~0.
"""

import time
from collections.abc import Sequence

import faiss
import numpy as np

from lab.bench import argument_parser
from lookalike.knn import KnnMethod


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def per_query_ms(index: faiss.Index, queries: np.ndarray, k: int, params=None) -> float:
    """Median latency of one-query searches (how the HTTP server asks), after a warm-up."""
    for query in queries[:10]:
        index.search(query[None, :], k, params=params)
    times = []
    for query in queries:
        start = time.perf_counter()
        index.search(query[None, :], k, params=params)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1000


def main(argv: Sequence[str] | None = None) -> None:
    parser = argument_parser(__file__, __doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_000, 10_000, 20_000, 50_000, 100_000])
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    hnsw = KnnMethod(name="hnsw")
    print(
        f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, d={args.dim}, k={args.k}, "
        f"{hnsw.faiss_factory()} ef_search={hnsw.ef_search}"
    )
    columns = ["flat ms/q", "flat 1thr", "hnsw ms/q", "flat batch ms/q", "hnsw batch ms/q", "hnsw build s"]
    print(f"{'n':>8} " + " ".join(f"{c:>{max(10, len(c))}}" for c in columns) + f" {'recall@1':>9} {'recall@k':>9}")
    for size in args.sizes:
        gallery = unit(rng.standard_normal((size, args.dim), dtype=np.float32))
        picks = rng.integers(0, size, args.queries)
        queries = unit(gallery[picks] + 0.05 * rng.standard_normal((args.queries, args.dim), dtype=np.float32))
        flat = faiss.index_factory(args.dim, "Flat", faiss.METRIC_INNER_PRODUCT)
        flat.add(gallery)
        start = time.perf_counter()
        graph = faiss.index_factory(args.dim, hnsw.faiss_factory(), faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = hnsw.ef_construction
        graph.add(gallery)
        build_s = time.perf_counter() - start
        params = faiss.SearchParametersHNSW(efSearch=max(hnsw.ef_search, args.k))
        flat_ms = per_query_ms(flat, queries, args.k)
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        flat_1_ms = per_query_ms(flat, queries, args.k)
        faiss.omp_set_num_threads(threads)
        hnsw_ms = per_query_ms(graph, queries, args.k, params)
        start = time.perf_counter()
        _, exact_ids = flat.search(queries, args.k)
        flat_batch = (time.perf_counter() - start) / args.queries * 1000
        start = time.perf_counter()
        _, graph_ids = graph.search(queries, args.k, params=params)
        hnsw_batch = (time.perf_counter() - start) / args.queries * 1000
        recall_1 = np.mean(graph_ids[:, 0] == exact_ids[:, 0])
        recall_k = np.mean([len(set(a) & set(b)) / args.k for a, b in zip(exact_ids, graph_ids)])
        print(
            f"{size:>8} {flat_ms:>10.2f} {flat_1_ms:>10.2f} {hnsw_ms:>10.2f} {flat_batch:>15.2f} {hnsw_batch:>15.2f} "
            f"{build_s:>12.1f} {recall_1:>9.3f} {recall_k:>9.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
