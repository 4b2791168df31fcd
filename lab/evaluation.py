"""`python -m lab evaluate`: every method on every benchmark in one run, through the production path.

For each method (the baselines, the raw pretrained backbone, each fine-tuned model) and each
benchmark (lab.benchmarks), the benchmark's gallery is indexed by the Indexer into a fresh
FaissStore (exact search), and every query goes through the SearchService twice: re-ranked
(the default RankingPolicy: near-duplicates collapsed) and plain (dedupe off). Both leave out
the query's own image, by its content hash, as production does. The top DEPTH results of each
query are judged against the benchmark's graded relevance with lab.metrics.

A method's embedder is wrapped in a memo keyed by the decoded pixels, so an image met again (a
gallery image that is also a query, the Tiny ImageNet images that four benchmarks share, the
second pass without re-ranking) is embedded once per method; the vectors are the same ones the
path would compute again.
"""

import hashlib
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from lab import metrics
from lab.baselines import ColourHistogramEmbedder, ImageEmbedder, PerceptualHashEmbedder, RandomEmbedder
from lab.benchmarks import Benchmark, GalleryFolder, build_benchmarks
from lookalike.cli import progress_bar
from lookalike.embedding import Embedder, ModelInfo
from lookalike.errors import LookalikeError
from lookalike.indexing import Indexer
from lookalike.search import Query, SearchService
from lookalike.sources import FolderSource
from lookalike.stores.faiss import FaissStore
from lab.datasets import DATASETS_ROOT, VAL_TAR

# Results judged per query: MRR and mAP count what is found within them, and the Precision@k /
# Recall@k curves run to k = DEPTH. Past 100 a person has stopped looking.
DEPTH = 100
CUTOFF = 10  # the k of P@k, R@k and nDCG@k in the table: one page of results
TABLE_METRICS = ("MRR", "P@1", f"P@{CUTOFF}", f"R@{CUTOFF}", "mAP", f"nDCG@{CUTOFF}")
QUERY_BATCH = 64
DEFAULT_SEED = 2026
# The acceptance test: the mAP gain over the raw backbone a fine-tuned model must reach, per
# benchmark (re-ranked, as served). Category and fragment search are where class-level training
# should help most; copy detection is what instance training must not lose. None: no floor, only
# no measurable loss (multi-view's 31 queries cannot show a small gain, only a large loss).
ACCEPTANCE_FLOORS: dict[str, float | None] = {"category": 0.06, "fragment": 0.06, "copy": 0.03, "multiview": None}
# Copy detection per edit kind: no kind may fall below the backbone, and the weakest gain must reach this.
WEAKEST_EDIT_GAIN = 0.05
MIN_SEEDS = 3
# Resamples of the paired bootstrap that puts an interval on the acceptance margin.
BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class Settings:
    backbone: Path
    finetuned: tuple[Path, ...] = ()
    datasets: Path = DATASETS_ROOT
    limit: int | None = None
    seed: int = DEFAULT_SEED


@dataclass(frozen=True)
class Method:
    name: str
    make: Callable[[], ImageEmbedder]
    model_file: Path | None = None  # the ONNX file, for learned methods
    finetuned: bool = False


@dataclass
class Scores:
    """One benchmark x method x re-ranking cell: means over queries, and the mean curves."""

    benchmark: str
    method: str
    reranked: bool
    queries: int
    values: dict[str, float]
    precision: np.ndarray  # P@k for k = 1..DEPTH
    recall: np.ndarray  # R@k for k = 1..DEPTH
    average_precisions: np.ndarray  # per query, in the benchmark's query order (paired comparisons)


@dataclass
class Evaluation:
    settings: Settings
    benchmarks: list[Benchmark]
    methods: list[Method]
    missing: list[Path]  # fine-tuned model files that were asked for and not found
    scores: list[Scores] = field(default_factory=list)
    infos: dict[str, ModelInfo] = field(default_factory=dict)  # by method name
    method_seconds: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def get(self, benchmark: str, method: str, reranked: bool = True) -> Scores:
        for scores in self.scores:
            if (scores.benchmark, scores.method, scores.reranked) == (benchmark, method, reranked):
                return scores
        raise KeyError((benchmark, method, reranked))


class _Memo:
    """An embedder that embeds each distinct picture once; same `info`, same vectors."""

    def __init__(self, inner: ImageEmbedder) -> None:
        self.inner = inner
        self.info = inner.info
        self._vectors: dict[bytes, np.ndarray] = {}

    def embed_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        keys = [_pixels_key(image) for image in images]
        missing = {key: image for key, image in zip(keys, images) if key not in self._vectors}
        if missing:
            vectors = self.inner.embed_images(list(missing.values()), batch_size=batch_size)
            self._vectors.update(zip(missing, vectors))
        if not keys:
            return np.zeros((0, self.info.dim), dtype=np.float32)
        return np.stack([self._vectors[key] for key in keys])


def _pixels_key(image: Image.Image) -> bytes:
    digest = hashlib.blake2b(f"{image.mode} {image.size}".encode(), digest_size=16)
    digest.update(image.tobytes())
    return digest.digest()


def methods(settings: Settings) -> tuple[list[Method], list[Path]]:
    """The methods in report order, and the fine-tuned files that do not exist."""
    found = [path for path in settings.finetuned if path.is_file()]
    listed = [
        Method("random", lambda: RandomEmbedder(settings.seed)),
        Method("colour histogram", ColourHistogramEmbedder),
        Method("perceptual hash", PerceptualHashEmbedder),
        Method("backbone", lambda: Embedder(settings.backbone), settings.backbone),
    ]
    listed += [
        Method(f"fine-tuned {number}", lambda path=path: Embedder(path), path, finetuned=True)
        for number, path in enumerate(found, start=1)
    ]
    return listed, [path for path in settings.finetuned if not path.is_file()]


def evaluate(settings: Settings, progress: bool = True) -> Evaluation:
    """Build the benchmarks in a scratch folder, run every method on them, judge every query."""
    tar = settings.datasets / VAL_TAR
    if not tar.is_file():
        raise LookalikeError(f"no Tiny ImageNet validation tar at {tar}: pass --datasets")
    if not settings.backbone.is_file():
        raise LookalikeError(f"no model at {settings.backbone}: build it with `python -m model_export.export_onnx`")
    started = time.perf_counter()
    listed, missing = methods(settings)
    with tempfile.TemporaryDirectory(prefix="lookalike-evaluate-") as scratch:
        folder = GalleryFolder(Path(scratch) / "gallery")
        benchmarks = build_benchmarks(folder, tar, settings.limit, settings.seed)
        evaluation = Evaluation(settings, benchmarks, listed, missing)
        for method in listed:
            method_started = time.perf_counter()
            embedder = _Memo(method.make())
            evaluation.infos[method.name] = embedder.info
            for benchmark in benchmarks:
                store_path = Path(scratch) / "store"
                with FaissStore(store_path, method="flat") as store:
                    keys = list(dict.fromkeys(benchmark.gallery))
                    indexer = Indexer(FolderSource(folder.root), embedder, store)
                    with progress_bar(disable=not progress) as on_progress:
                        report = indexer.update(keys, on_progress=on_progress)
                    if report.failed or report.not_images:
                        raise LookalikeError(f"{benchmark.name}: gallery images failed to index: {report.summary()}")
                    service = SearchService(embedder, store)
                    for reranked in (True, False):
                        evaluation.scores.append(_run(service, folder, benchmark, method.name, reranked, progress))
                shutil.rmtree(store_path)
            evaluation.method_seconds[method.name] = time.perf_counter() - method_started
    evaluation.seconds = time.perf_counter() - started
    return evaluation


def _run(
    service: SearchService, folder: GalleryFolder, benchmark: Benchmark, method: str, reranked: bool, progress: bool
) -> Scores:
    label = f"{method} / {benchmark.name} / {'re-ranked' if reranked else 'plain'}"
    rankings, relevant = [], []
    bar = tqdm(total=len(benchmark.queries), desc=label, unit="query", file=sys.stderr, disable=not progress)
    for start in range(0, len(benchmark.queries), QUERY_BATCH):
        chunk = benchmark.queries[start : start + QUERY_BATCH]
        results = service.search([Query(folder.read(q.key), q.box) for q in chunk], k=DEPTH, dedupe=reranked)
        for query, result in zip(chunk, results):
            if result.error is not None:
                raise result.error
            rankings.append(np.array([query.grades.get(hit.id, 0) for hit in result.hits], dtype=np.int64))
            relevant.append(np.fromiter(query.grades.values(), dtype=np.int64))
        bar.update(len(chunk))
    bar.close()
    return judge(benchmark.name, method, reranked, rankings, relevant)


def judge(
    benchmark: str, method: str, reranked: bool, rankings: Sequence[np.ndarray], relevant: Sequence[np.ndarray]
) -> Scores:
    """Means over queries of the table's metrics and of the P@k / R@k curves."""
    ks = np.arange(1, DEPTH + 1)
    counts = [len(grades) for grades in relevant]
    precision = np.mean([metrics.precision_at_k(ranked, ks) for ranked in rankings], axis=0)
    recall = np.mean([metrics.recall_at_k(ranked, count, ks) for ranked, count in zip(rankings, counts)], axis=0)
    average_precisions = np.array([metrics.average_precision(ranked, count) for ranked, count in zip(rankings, counts)])
    values = {
        "MRR": metrics.mean_reciprocal_rank(rankings),
        "P@1": float(precision[0]),
        f"P@{CUTOFF}": float(precision[CUTOFF - 1]),
        f"R@{CUTOFF}": float(recall[CUTOFF - 1]),
        "mAP": float(np.mean(average_precisions)),
        f"nDCG@{CUTOFF}": float(np.mean([metrics.ndcg_at_k(r, g, CUTOFF) for r, g in zip(rankings, relevant)])),
    }
    return Scores(benchmark, method, reranked, len(rankings), values, precision, recall, average_precisions)


# -- acceptance ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Acceptance:
    """Fine-tuned vs raw backbone on one benchmark's mAP (re-ranked, as served)."""

    benchmark: str
    backbone: float
    finetuned: tuple[float, ...]  # one per model file (training seed)
    # 95% paired-bootstrap interval of the margin over queries (paired_interval); nan: not computed
    interval: tuple[float, float] = (math.nan, math.nan)
    floor: float | None = 0.0  # the smallest margin accepted (ACCEPTANCE_FLOORS); None: no loss

    @property
    def mean(self) -> float:
        return float(np.mean(self.finetuned))

    @property
    def std(self) -> float:
        return float(np.std(self.finetuned, ddof=1)) if len(self.finetuned) > 1 else math.nan

    @property
    def spread(self) -> float:
        """max - min over seeds: the margin must clear all of the seeds' disagreement."""
        return float(np.ptp(self.finetuned))

    @property
    def margin(self) -> float:
        return self.mean - self.backbone

    @property
    def passed(self) -> bool:
        """A gain: at least the floor, above the seed spread, the query interval above zero.
        No floor: the interval reaches zero or above (no loss the queries can show)."""
        low, high = self.interval
        if len(self.finetuned) < MIN_SEEDS:
            return False
        if self.floor is None:
            return bool(high >= 0)
        return self.margin >= self.floor and self.margin > self.spread and bool(low > 0)


def acceptance(evaluation: Evaluation) -> list[Acceptance]:
    finetuned = [method.name for method in evaluation.methods if method.finetuned]
    if not finetuned:
        return []
    names = {benchmark.name for benchmark in evaluation.benchmarks}
    checks = []
    for name, floor in ((name, floor) for name, floor in ACCEPTANCE_FLOORS.items() if name in names):
        backbone = evaluation.get(name, "backbone")
        seeds = [evaluation.get(name, method) for method in finetuned]
        interval = paired_interval(
            backbone.average_precisions, [seed.average_precisions for seed in seeds], evaluation.settings.seed
        )
        mean_aps = tuple(seed.values["mAP"] for seed in seeds)
        checks.append(Acceptance(name, backbone.values["mAP"], mean_aps, interval, floor))
    return checks


@dataclass(frozen=True)
class KindGain:
    """One kind of query (copy detection: one edit) of a benchmark: mAP of the backbone and of
    the fine-tuned models (averaged over seeds), re-ranked."""

    kind: str
    queries: int
    backbone: float
    finetuned: float

    @property
    def gain(self) -> float:
        return self.finetuned - self.backbone


def gains_by_kind(evaluation: Evaluation, benchmark: str) -> list[KindGain]:
    """Per query kind, in the benchmark's order of kinds; empty without a fine-tuned model."""
    finetuned = [method.name for method in evaluation.methods if method.finetuned]
    queries = next((b.queries for b in evaluation.benchmarks if b.name == benchmark), [])
    if not finetuned or not queries:
        return []
    kinds = np.array([query.kind for query in queries])
    backbone = evaluation.get(benchmark, "backbone").average_precisions
    tuned = np.mean([evaluation.get(benchmark, name).average_precisions for name in finetuned], axis=0)
    return [
        KindGain(kind, int(np.sum(kinds == kind)), float(backbone[kinds == kind].mean()), float(tuned[kinds == kind].mean()))
        for kind in dict.fromkeys(kinds.tolist())
    ]


def paired_interval(
    backbone: np.ndarray, finetuned: Sequence[np.ndarray], seed: int, resamples: int = BOOTSTRAP_RESAMPLES
) -> tuple[float, float]:
    """95% interval of the margin (mean over queries of the fine-tuned AP, averaged over seeds,
    minus the backbone's AP on the same query), resampling queries with replacement.

    The seed spread says how much the margin owes to training randomness; this says how much it
    owes to which queries the benchmark happens to hold. Paired, because both methods answer the
    same queries: the hard ones are hard for both, and only the per-query gains vary.
    """
    gains = np.mean(np.asarray(finetuned, dtype=np.float64), axis=0) - np.asarray(backbone, dtype=np.float64)
    rng = np.random.default_rng(seed)
    chunks = [min(100, resamples - done) for done in range(0, resamples, 100)]  # 100 resamples at a time: bounded memory
    means = np.concatenate([gains[rng.integers(0, len(gains), (size, len(gains)))].mean(axis=1) for size in chunks])
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)
