"""The `lookalike` command: a thin adapter from argv to the core.

stdout carries results only (JSON lines with --json); progress and logs go to stderr, so that
scripts can pipe the output.
"""

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from lookalike.config import default_model_path, default_store_path
from lookalike.embedding import Embedder
from lookalike.errors import LookalikeError
from lookalike.images import CropBox
from lookalike.indexing import Indexer
from lookalike.ranking import RankingPolicy
from lookalike.search import Query, SearchService
from lookalike.sources import FolderSource
from lookalike.stores.faiss_store import FaissStore

GALLERY_FILENAME = "gallery.json"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.command(args)
    except LookalikeError as error:
        print(f"lookalike: {error}", file=sys.stderr)
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

    search = command("search", _search, "rank the gallery by similarity to each query image")
    search.add_argument("images", nargs="+", metavar="IMAGE")
    search.add_argument("--box", type=_box, default=None, metavar="X0,Y0,X1,Y1", help="search this fragment (half-open pixels of the displayed image)")
    search.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    search.add_argument("--json", action="store_true", help="one JSON line per query on stdout")
    search.add_argument("--no-dedupe", action="store_true", help="keep near-duplicate gallery images")
    search.add_argument("--tag", action="append", default=[], type=_tag, metavar="NAME=VALUE", help="only images with this tag (repeatable)")

    serve = command("serve", _serve, "serve the HTTP API (and, with --watch, index a drop folder as it changes)")
    serve.add_argument("--watch", type=Path, default=None, metavar="DIR")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)

    block = command("block", _block, "keep these gallery ids out of every result")
    block.add_argument("ids", nargs="+", metavar="ID")
    unblock = command("unblock", _unblock, "let these gallery ids back into results")
    unblock.add_argument("ids", nargs="+", metavar="ID")
    command("blocked", _blocked, "list the blocked ids")
    return parser


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
    path = args.store or default_store_path()
    if must_exist and not Path(path).is_dir():
        raise LookalikeError(f"no store at {path}: build one with `lookalike index DIR`")
    return FaissStore(path, **options)


def _embedder(args: argparse.Namespace) -> Embedder:
    path = args.model or default_model_path()
    if not Path(path).is_file():
        raise LookalikeError(f"no model at {path}: build it with `python -m model_export.export_onnx`")
    return Embedder(path)


def _gallery_root(store_path: Path) -> Path | None:
    """The folder `lookalike index` last indexed into this store, where its images are read."""
    record = store_path / GALLERY_FILENAME
    return Path(json.loads(record.read_text())["root"]) if record.is_file() else None


def _remember_gallery(store_path: Path, root: Path) -> None:
    (store_path / GALLERY_FILENAME).write_text(json.dumps({"root": str(root)}))


def _index(args: argparse.Namespace) -> int:
    if not args.dir.is_dir():
        raise LookalikeError(f"{args.dir} is not a directory")
    store = _store(args, method=args.method)
    source = FolderSource(args.dir)
    report = Indexer(source, _embedder(args), store).sync(progress=True)
    _remember_gallery(store.path, source.root)
    print(report.summary(), file=sys.stderr)
    return 0


def _search(args: argparse.Namespace) -> int:
    service = SearchService(_embedder(args), _store(args, must_exist=True))
    queries, read_errors = [], {}
    for position, name in enumerate(args.images):
        try:
            queries.append(Query(Path(name).read_bytes(), args.box))
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
    from lookalike.http.routes import create_app
    from lookalike.http.server import serve

    store = _store(args)
    embedder = _embedder(args)
    root = args.watch or _gallery_root(store.path)
    if root is None:
        raise LookalikeError("no gallery folder: run `lookalike index DIR` first or pass --watch DIR")
    source = FolderSource(root)
    watcher = None
    if args.watch:
        from lookalike.watch import FolderWatcher

        indexer = Indexer(source, embedder, store)
        print(indexer.sync(progress=True).summary(), file=sys.stderr)
        _remember_gallery(store.path, source.root)
        watcher = FolderWatcher(source, indexer)
        watcher.start()
    app = create_app(SearchService(embedder, store, RankingPolicy()), source)
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
