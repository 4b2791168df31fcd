"""The `lookalike` command: a thin adapter from argv to the core.

stdout carries results only (JSON lines with --json); progress and logs go to stderr, so that
scripts can pipe the output.
"""

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from lookalike.interactions.click_labels import PAIRS_FILENAME, LabelRules, training_pairs, write_pairs
from lookalike.paths import default_model_path, default_store_path
from lookalike.embedding import Embedder, InvalidModelError
from lookalike.interactions.engagement import engagement
from lookalike.errors import LookalikeError
from lookalike.files import MAX_IMAGE_FILE_BYTES, read_regular_file
from lookalike.interactions.sqlite_log import EVENTS_FILENAME, SqliteEventLog
from lookalike.images import CropBox
from lookalike.indexing import Indexer, ProgressCallback
from lookalike.proposals import Proposer
from lookalike.ranking import RankingPolicy
from lookalike.reindexing import reindex
from lookalike.search import Query, SearchService
from lookalike.sources import FolderSource
from lookalike.stores.faiss import FaissStore
from lookalike.workspace import GalleryRecord

REGIONS_HELP = (
    "also index each image's suggested fragments, so a query of one object finds photos containing it "
    "(default: as the store was last indexed; --no-regions turns it off)"
)


# powertools Loggers (the HTTP routes') read their service name from the environment when they
# are created: the Lambda functions get theirs from the stack, and the command names itself
# unless told otherwise.
SERVICE_NAME = "lookalike"


def main(argv: Sequence[str] | None = None) -> int:
    return run(_parser(), argv)


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse argv and run its command (each sets `command`); bad input is one line on stderr, exit 2."""
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", SERVICE_NAME)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.command(args)
    except LookalikeError as error:
        print(f"{parser.prog}: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lookalike", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, handler, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(command=handler)
        sub.add_argument("--store", type=Path, default=None, help=f"store directory (default {default_store_path()}, or $LOOKALIKE_STORE)")
        sub.add_argument("--model", type=Path, default=None, help=f"ONNX embedder (default {default_model_path()}, or $LOOKALIKE_MODEL)")
        return sub

    index = command("index", _index, "index every image under DIR; re-runs skip unchanged files and drop removed ones")
    index.add_argument("dir", type=Path, metavar="DIR")
    index.add_argument("--method", default="auto", help="k-NN method: auto (exact for small galleries), flat or hnsw")
    index.add_argument("--regions", action=argparse.BooleanOptionalAction, default=None, help=REGIONS_HELP)
    index.add_argument(
        "--upgrade",
        action="store_true",
        help="if the store holds another model's vectors, rebuild it with this model as `reindex` does, instead of refusing",
    )

    reindex_help = "re-embed the whole gallery with --model into a new store, then swap it in (switching models)"
    reindex_parser = command("reindex", _reindex, reindex_help)
    reindex_parser.add_argument("dir", type=Path, nargs="?", metavar="DIR", help="default: the folder last indexed")
    reindex_parser.add_argument("--regions", action=argparse.BooleanOptionalAction, default=None, help=REGIONS_HELP)

    search = command("search", _search, "rank the gallery by similarity to each query image")
    search.add_argument("images", nargs="+", metavar="IMAGE")
    search.add_argument("--box", type=_box, default=None, metavar="X0,Y0,X1,Y1", help="search this fragment (half-open pixels of the displayed image)")
    search.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    search.add_argument("--json", action="store_true", help="one JSON line per query on stdout")
    search.add_argument("--no-dedupe", action="store_true", help="keep near-duplicate gallery images")
    search.add_argument("--tag", action="append", default=[], type=_tag, metavar="NAME=VALUE", help="only images with this tag (repeatable)")

    serve = command("serve", _serve, "serve the HTTP API (and, with --watch, index a drop folder as it changes)")
    serve.add_argument("--watch", type=Path, default=None, metavar="DIR")
    serve.add_argument("--regions", action=argparse.BooleanOptionalAction, default=None, help=f"with --watch: {REGIONS_HELP}")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)

    block = command("block", _block, "keep these gallery ids out of every result")
    block.add_argument("ids", nargs="+", metavar="ID")
    unblock = command("unblock", _unblock, "let these gallery ids back into results")
    unblock.add_argument("ids", nargs="+", metavar="ID")
    command("blocked", _blocked, "list the blocked ids")

    metrics = command("metrics", _metrics, "online metrics from the event log: CTR overall, by position and per day, dwell")
    _add_event_source(metrics)
    metrics.add_argument("--json", action="store_true", help="the report as one JSON object")
    pairs = command("training-set", _training_set, f"turn the event log's clicks into training pairs (DIR/{PAIRS_FILENAME})")
    pairs.add_argument("--out", type=Path, required=True, metavar="DIR")
    _add_event_source(pairs)
    pairs.add_argument("--min-sessions", type=int, default=LabelRules.min_sessions, help="distinct sessions a pair needs (default %(default)s)")
    pairs.add_argument("--min-dwell-ms", type=int, default=LabelRules.min_dwell_ms, help="shorter views are accidental clicks (default %(default)s)")
    pairs.add_argument("--missing-dwell", choices=("keep", "drop"), default=LabelRules.missing_dwell, help="clicks without a dwell report (default %(default)s)")
    pairs.add_argument("--eta", type=float, default=LabelRules.eta, help="default examination curve (1/position)^eta (default %(default)s)")
    pairs.add_argument("--estimate-propensities", action="store_true", help="estimate position propensities from the log where it can")
    return parser


@contextmanager
def progress_bar(desc: str = "indexing", unit: str = "img", *, disable: bool = False) -> Iterator[ProgressCallback]:
    """A bar on stderr that the core's progress callback moves. The core only reports progress:
    it also runs in Lambda, where tqdm is not shipped. The bar appears with the first report, so
    that a command failing before any work leaves no empty bar behind."""
    bars: list[tqdm] = []

    def show(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=disable))
        bars[0].total = total
        bars[0].update(done - bars[0].n)

    try:
        yield show
    finally:
        for bar in bars:
            bar.close()


def _box(value: str) -> CropBox:
    try:
        return CropBox.parse(value)
    except LookalikeError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _tag(value: str) -> tuple[str, str]:
    name, sep, tag_value = value.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {value!r}")
    return name, tag_value


def _store(args: argparse.Namespace, must_exist: bool = False, **options) -> FaissStore:
    path = Path(args.store or default_store_path())
    if must_exist and not path.is_dir():
        raise LookalikeError(f"no store at {path}: build one with `lookalike index DIR`")
    if path.exists() and not path.is_dir():
        raise LookalikeError(f"--store {path} is a file, not a store directory")
    return FaissStore(path, **options)


def _embedder(args: argparse.Namespace) -> Embedder:
    path = args.model or default_model_path()
    if not Path(path).is_file():
        raise LookalikeError(f"no model at {path}: build it with `python -m model_export.export_onnx`")
    try:
        return Embedder(path)
    except InvalidModelError as error:
        raise LookalikeError(f"--model {error}") from None


def _regions(args: argparse.Namespace, record: GalleryRecord | None) -> bool:
    """--regions / --no-regions when given, otherwise what the store was last indexed with."""
    return args.regions if args.regions is not None else bool(record and record.regions)


def _index(args: argparse.Namespace) -> int:
    if not args.dir.is_dir():
        raise LookalikeError(f"{args.dir} is not a directory")
    embedder = _embedder(args)
    if args.upgrade and _holds_another_model(Path(args.store or default_store_path()), embedder.info.version):
        return _reindex(args)
    store = _store(args, method=args.method)
    source = FolderSource(args.dir)
    regions = _regions(args, GalleryRecord.read(store.path))
    GalleryRecord(source.root, regions).claim(store.path)
    indexer = Indexer(source, embedder, store, regions=regions)
    with progress_bar() as on_progress:
        report = indexer.sync(on_progress=on_progress)
    print(report.summary(), file=sys.stderr)
    return 0


def _holds_another_model(store_path: Path, version: str) -> bool:
    """Whether an existing store's vectors come from a model other than `version` (a new
    release's model over an old demo store: `make demo` rebuilds it instead of exiting)."""
    if not store_path.is_dir():
        return False
    with FaissStore(store_path) as store:
        return store.model_version not in (None, version)


def _reindex(args: argparse.Namespace) -> int:
    store_path = Path(args.store or default_store_path())
    record = GalleryRecord.read(store_path)
    root = args.dir or (record.root if record else None)
    if root is None:
        raise LookalikeError(f"no gallery folder is recorded in {store_path}: pass DIR")
    if not root.is_dir():
        raise LookalikeError(f"{root} is not a directory")
    source = FolderSource(root)
    regions = _regions(args, record)
    with progress_bar() as on_progress:
        report = reindex(store_path, source, _embedder(args), regions=regions, on_progress=on_progress)
    GalleryRecord(source.root, regions).write(store_path)
    print(report.index.summary(), file=sys.stderr)
    print(
        f"store {store_path} now holds model version {report.new_version!r} (was {report.old_version!r}); "
        f"the previous store is kept at {report.previous}",
        file=sys.stderr,
    )
    return 0


def _search(args: argparse.Namespace) -> int:
    service = SearchService(_embedder(args), _store(args, must_exist=True))
    queries, read_errors = [], {}
    for position, name in enumerate(args.images):
        try:
            queries.append(Query(read_regular_file(name, MAX_IMAGE_FILE_BYTES), args.box))
        except OSError as error:
            read_errors[position] = f"cannot read {name}: {error.strerror or error}"
            queries.append(Query(b"", args.box))
    results = service.search(queries, k=args.k, tags=dict(args.tag) or None, dedupe=not args.no_dedupe)
    failed = False
    for position, (name, result) in enumerate(zip(args.images, results)):
        error = read_errors.get(position) or (str(result.error) if result.error else None)
        failed |= error is not None
        line = {"query": name, "results": [] if error else [{"id": hit.id, "score": hit.score} for hit in result.hits]}
        if error:
            line["error"] = error
        if args.json:
            print(json.dumps(line), flush=True)
        else:
            _print_ranking(line)
    return 1 if failed else 0


def _print_ranking(line: dict) -> None:
    print(line["query"])
    if "error" in line:
        print(f"  error: {line['error']}")
    for rank, hit in enumerate(line["results"], start=1):
        print(f"  {rank:>3}. {hit['score']:.4f}  {hit['id']}")


def _serve(args: argparse.Namespace) -> int:
    from lookalike.http.app import create_app
    from lookalike.http.server import serve

    store = _store(args)
    embedder = _embedder(args)
    record = GalleryRecord.read(store.path)
    root = args.watch or (record.root if record else None)
    if root is None:
        raise LookalikeError("no gallery folder: run `lookalike index DIR` first or pass --watch DIR")
    source = FolderSource(root)
    watcher = None
    if args.watch:
        from lookalike.watch import FolderWatcher

        regions = _regions(args, record)
        GalleryRecord(source.root, regions).claim(store.path)
        indexer = Indexer(source, embedder, store, regions=regions)
        with progress_bar() as on_progress:
            report = indexer.sync(on_progress=on_progress)
        print(report.summary(), file=sys.stderr)
        watcher = FolderWatcher(source, indexer)
        watcher.start()
    proposer = Proposer(embedder) if embedder.has_activation_maps else None
    events = SqliteEventLog(store.path / EVENTS_FILENAME)
    app = create_app(SearchService(embedder, store, RankingPolicy()), source, proposer=proposer, events=events)
    try:
        serve(app, args.host, args.port)
    finally:
        if watcher:
            watcher.stop()
    return 0


def _block(args: argparse.Namespace) -> int:
    store = _store(args)
    store.block(args.ids)
    store.persist()
    return 0


def _unblock(args: argparse.Namespace) -> int:
    store = _store(args)
    store.unblock(args.ids)
    store.persist()
    return 0


def _blocked(args: argparse.Namespace) -> int:
    for blocked_id in sorted(_store(args).blocked()):
        print(blocked_id)
    return 0


def _add_event_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", type=_moment, default=None, help="events received from (ISO date or time, UTC)")
    parser.add_argument("--until", type=_moment, default=None, help="events received before (ISO date or time, UTC)")
    parser.add_argument("--events-table", default=None, metavar="TABLE", help="read the cloud's DynamoDB event log instead of the store's")


def _moment(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO date or time, got {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _event_records(args: argparse.Namespace):
    if args.events_table:
        from lookalike.aws.dynamodb_log import DynamoDBEventLog  # here: only this option needs boto3

        return DynamoDBEventLog.named(args.events_table).events(args.since, args.until)
    path = Path(args.store or default_store_path()) / EVENTS_FILENAME
    if not path.is_file():
        raise LookalikeError(f"no event log at {path}: `lookalike serve` (POST /events) or `python -m lab simulate` writes it")
    return SqliteEventLog(path).events(args.since, args.until)


def _metrics(args: argparse.Namespace) -> int:
    report = engagement(_event_records(args))
    print(json.dumps(report.as_dict()) if args.json else report.table())
    return 0


def _training_set(args: argparse.Namespace) -> int:
    rules = LabelRules(
        min_dwell_ms=args.min_dwell_ms,
        missing_dwell=args.missing_dwell,
        min_sessions=args.min_sessions,
        eta=args.eta,
        estimate_propensities=args.estimate_propensities,
    )
    pairs, report = training_pairs(_event_records(args), rules)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / PAIRS_FILENAME
    write_pairs(path, pairs)
    print(report.summary(), file=sys.stderr)
    print(f"wrote {len(pairs)} pairs to {path}", file=sys.stderr)
    return 0
