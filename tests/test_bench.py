"""The benchmarks run one way, `python -m lab bench NAME [ARGS...]`, and say so."""

import ast
from pathlib import Path

import pytest

import lab.bench
from lab.__main__ import main

BENCH_FOLDER = Path(lab.bench.__file__).parent
BENCHMARKS = sorted(path.stem for path in BENCH_FOLDER.glob("*.py") if path.name != "__init__.py")


def test_the_help_lists_every_benchmark_with_what_it_measures(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    listed = capsys.readouterr().out
    for name in BENCHMARKS:
        summary = ast.get_docstring(ast.parse((BENCH_FOLDER / f"{name}.py").read_text())).splitlines()[0]
        assert f"{name} " in listed and summary in listed, f"{name} is not listed with its summary"


@pytest.mark.parametrize("name", BENCHMARKS)
def test_a_benchmark_has_main_argv_and_its_docstring_gives_the_command(name):
    module = ast.parse((BENCH_FOLDER / f"{name}.py").read_text())
    (entry,) = [node for node in module.body if isinstance(node, ast.FunctionDef) and node.name == "main"]
    assert [argument.arg for argument in entry.args.args] == ["argv"], f"{name}.main does not take argv"
    assert f"python -m lab bench {name}" in ast.get_docstring(module), f"{name}'s docstring does not show its command"


def test_the_arguments_after_the_name_go_to_the_benchmark(capsys):
    assert main(["bench", "store_bench", "--sizes", "64", "--dim", "8", "--queries", "4", "-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "d=8, k=3" in lines[0]
    assert lines[-1].split()[0] == "64"


def test_a_benchmark_shows_its_own_usage_under_the_lab_command(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "store_bench", "--help"])
    assert capsys.readouterr().out.startswith("usage: python -m lab bench store_bench ")
