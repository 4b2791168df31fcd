"""Exact (Flat inner product) vs HNSW search time on random unit vectors: where AUTO_EXACT_LIMIT comes from.

    python bench/store_bench.py [--sizes 10000 50000 100000] [--dim 1280] [--queries 200]

Queries are gallery vectors plus noise (so each has a true nearest neighbour), searched one at a
time as the HTTP server does, and also as one batch. Random vectors in 1280 dimensions are the
hardest case for HNSW recall; real embeddings cluster and do better.
"""

import argparse
import time

import faiss
import numpy as np

from lookalike.knn import KnnMethod


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def per_query_ms(index: faiss.Index, queries: np.ndarray, k: int, params=None) -> float:
    start = time.perf_counter()
    for query in queries:
        index.search(query[None, :], k, params=params)
    return (time.perf_counter() - start) / len(queries) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    hnsw = KnnMethod(name="hnsw")
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, d={args.dim}, k={args.k}, {hnsw.faiss_factory()} ef_search={hnsw.ef_search}")
    print(f"{'n':>8} {'flat ms/q':>10} {'hnsw ms/q':>10} {'flat batch ms/q':>16} {'hnsw batch ms/q':>16} {'hnsw build s':>13} {'recall@k':>9}")
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
        hnsw_ms = per_query_ms(graph, queries, args.k, params)
        start = time.perf_counter()
        _, exact_ids = flat.search(queries, args.k)
        flat_batch = (time.perf_counter() - start) / args.queries * 1000
        start = time.perf_counter()
        _, graph_ids = graph.search(queries, args.k, params=params)
        hnsw_batch = (time.perf_counter() - start) / args.queries * 1000
        recall = np.mean([len(set(a) & set(b)) / args.k for a, b in zip(exact_ids, graph_ids)])
        print(f"{size:>8} {flat_ms:>10.2f} {hnsw_ms:>10.2f} {flat_batch:>16.2f} {hnsw_batch:>16.2f} {build_s:>13.1f} {recall:>9.3f}", flush=True)


if __name__ == "__main__":
    main()
