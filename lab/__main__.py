"""`python -m lab`: the offline lab's commands (evaluation, the click simulator, the benchmarks).

The lab measures the product from outside and is never shipped: serving code never imports it.
Everything in it runs this one way, from the repository root.
"""

import argparse
import ast
import importlib

import sys
from collections.abc import Sequence
from pathlib import Path

import lab.bench
from lab.click_simulator import SimulationSettings, default_work_dir, simulate
from lab.datasets import DATASETS_ROOT, TINY_IMAGENET_TRAIN
from lab.evaluation import DEFAULT_SEED, Settings, evaluate
from lab.evaluation_report import write_report
from lookalike.embedding import Embedder
from lookalike.cli import run
from lookalike.errors import LookalikeError
from lookalike.interactions.engagement import engagement
from lookalike.interactions.sqlite_log import EVENTS_FILENAME, SqliteEventLog
from lookalike.paths import default_model_path
from lookalike.workspace import GalleryRecord


def main(argv: Sequence[str] | None = None) -> int:
    return run(_parser(), argv)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lab", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    simulate_help = "play simulated users against the local search (Tiny ImageNet training images)"
    simulate_parser = commands.add_parser("simulate", help=simulate_help, description=simulate_help)
    simulate_parser.set_defaults(command=_simulate)
    simulate_parser.add_argument("--model", type=Path, default=None, help=f"ONNX embedder (default {default_model_path()}, or $LOOKALIKE_MODEL)")
    simulate_parser.add_argument("--store", type=Path, default=None, help="store directory (default WORK/store; never $LOOKALIKE_STORE)")
    simulate_parser.add_argument("--sessions", type=int, default=1000)
    simulate_parser.add_argument("--seed", type=int, default=0)
    simulate_parser.add_argument("--classes", type=int, default=50, help="Tiny ImageNet classes (default %(default)s)")
    simulate_parser.add_argument("--per-class", type=int, default=20, help="gallery images per class (default %(default)s)")
    simulate_parser.add_argument("--queries-per-class", type=int, default=2, help="query images per class (default %(default)s)")
    simulate_parser.add_argument("-k", type=int, default=10, help="results per search (default %(default)s)")
    simulate_parser.add_argument("--work", type=Path, default=None, help="gallery and store folder (default ~/.cache/lookalike/simulator)")
    simulate_parser.add_argument("--tar", type=Path, default=None, help=f"Tiny ImageNet train-100.tar (default {TINY_IMAGENET_TRAIN})")

    evaluate_help = "compare retrieval methods on the offline benchmarks; writes a report with plots"
    evaluate_parser = commands.add_parser("evaluate", help=evaluate_help, description=evaluate_help)
    evaluate_parser.set_defaults(command=_evaluate)
    evaluate_parser.add_argument("--model", type=Path, default=None, help=f"the raw backbone ONNX (default {default_model_path()}, or $LOOKALIKE_MODEL)")
    evaluate_parser.add_argument("--model-finetuned", type=Path, action="append", default=[], metavar="ONNX", help="a fine-tuned model; repeat once per training seed")
    evaluate_parser.add_argument("--datasets", type=Path, default=DATASETS_ROOT, help=f"folder holding tiny-imagenet/val.tar (default {DATASETS_ROOT})")
    evaluate_parser.add_argument("--limit", type=int, default=None, metavar="N", help="smoke size: N Tiny ImageNet images, N/10 photos and buildings")
    evaluate_parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the copy-detection edits and the random baseline")
    evaluate_parser.add_argument("--out", type=Path, default=Path("docs/EVALUATION.md"), help="the report; plots go to evaluation/ beside it")

    benchmarks = _benchmarks()
    bench_help = f"run a benchmark: {', '.join(benchmarks)}"
    bench_parser = commands.add_parser(
        "bench",
        help=bench_help,
        description="run a benchmark (lab/bench/NAME.py) with its own arguments: `python -m lab bench NAME --help` lists them",
        epilog="\n".join(f"  {name:<18} {summary}" for name, summary in benchmarks.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench_parser.set_defaults(command=_bench)
    bench_parser.add_argument("name", choices=benchmarks, metavar="NAME", help="one of the benchmarks below")
    bench_parser.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS", help="the benchmark's own arguments")
    return parser


def _benchmarks() -> dict[str, str]:
    """Module name -> the first line of its docstring, for every module of lab.bench: read from the
    source, so that listing them does not import what they need (torch, the scene packages)."""
    folder = Path(lab.bench.__file__).parent
    return {
        path.stem: ast.get_docstring(ast.parse(path.read_text())).splitlines()[0]
        for path in sorted(folder.glob("*.py"))
        if path.name != "__init__.py"
    }


def _bench(args: argparse.Namespace) -> int:
    importlib.import_module(f"lab.bench.{args.name}").main(args.args)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    settings = Settings(args.model or default_model_path(), tuple(args.model_finetuned), args.datasets, args.limit, args.seed)
    write_report(evaluate(settings), args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _simulate(args: argparse.Namespace) -> int:
    model = args.model or default_model_path()
    if not Path(model).is_file():
        raise LookalikeError(f"no model at {model}: build it with `python -m model_export.export_onnx`")
    settings = SimulationSettings(
        work=args.work or default_work_dir(),
        tar=args.tar or TINY_IMAGENET_TRAIN,
        classes=args.classes,
        per_class=args.per_class,
        queries_per_class=args.queries_per_class,
        sessions=args.sessions,
        seed=args.seed,
        k=args.k,
    )
    store_path = args.store or settings.store
    summary = simulate(settings, Embedder(model), store_path)
    GalleryRecord(settings.gallery.resolve()).write(store_path)
    print(summary.text())
    print(engagement(SqliteEventLog(store_path / EVENTS_FILENAME).events()).table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
