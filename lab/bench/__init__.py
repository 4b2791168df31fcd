"""The benchmarks: the measurements behind the product's constants and the figures in docs/.

One module each, run from the repository root as `python -m lab bench NAME [ARGS...]`
(`python -m lab bench --help` lists them) or `python -m lab.bench.NAME [ARGS...]`; each has a
`main(argv)` and says in its docstring what it measures and how to run it.
"""

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path


def argument_parser(module_file: str, doc: str) -> argparse.ArgumentParser:
    """A benchmark's parser: its usage line names `python -m lab bench NAME` however it was
    started, and its description is the first line of the module's docstring."""
    return argparse.ArgumentParser(prog=f"python -m lab bench {Path(module_file).stem}", description=doc.splitlines()[0])


def milliseconds(work: Callable[[], object], repeats: int) -> float:
    """The median time of `repeats` runs of `work`, after one warm-up run."""
    work()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)
