"""`python -m lab evaluate` at smoke size: the report's structure, and orderings any sane run keeps.

No number is hard-coded: the run is small (a few classes, photos and buildings), so only
comparisons that hold by a wide margin are asserted.
"""

import re
import shlex
from types import SimpleNamespace
from pathlib import Path

import pytest

import lab.__main__ as lab_cli
from lab import evaluation_report
from lab.benchmarks import EDITS, GalleryFolder
import numpy as np

from lab.evaluation import TABLE_METRICS, Acceptance, Evaluation, KindGain, Settings, evaluate, gains_by_kind, paired_interval
from lab.evaluation_report import write_report
from lab.datasets import DATASETS_ROOT, TINY_IMAGENET_VAL
from tests.support.datasets import require_dataset

LIMIT = 20
BENCHMARKS = ("category", "fragment", "copy", "multiview")
METHODS = ("random", "colour histogram", "perceptual hash", "backbone")


@pytest.fixture(scope="module")
def run(tmp_path_factory, model_path) -> tuple[Evaluation, Path]:
    """One smoke-sized evaluation, reported the way the CLI reports it."""
    require_dataset(TINY_IMAGENET_VAL)
    out = tmp_path_factory.mktemp("docs") / "EVALUATION.md"
    settings = Settings(model_path, (out.parent / "seed-1.onnx",), DATASETS_ROOT, LIMIT, seed=1)
    evaluation = evaluate(settings, progress=False)
    write_report(evaluation, out)
    return evaluation, out


@pytest.fixture(scope="module")
def report(run) -> Path:
    return run[1]


def tables(text: str) -> dict[str, dict[tuple[str, str], dict[str, float]]]:
    """benchmark -> (method, ranking) -> metric -> value, read back from the markdown."""
    parsed: dict[str, dict[tuple[str, str], dict[str, float]]] = {}
    current = None
    for line in text.splitlines():
        heading = re.match(r"### .* \(`(\w+)`: \d+ queries", line)
        if heading:
            current = parsed.setdefault(heading.group(1), {})
        elif current is not None and line.startswith("| ") and not line.startswith(("| method", "| ---")):
            method, ranking, *values = [cell.strip() for cell in line.strip("|").split("|")]
            current[(method, ranking)] = dict(zip(TABLE_METRICS, map(float, values)))
        elif line.startswith("## ") and current is not None:
            current = None
    return parsed


def test_the_report_starts_with_the_command_that_regenerates_it(run, report, monkeypatch):
    text = report.read_text()
    command = next(line.strip() for line in text.splitlines() if line.strip().startswith("python -m lab evaluate"))
    assert text.index(command) < text.index("## Results")
    words = shlex.split(command)
    assert words[words.index("--out") + 1] == str(report)
    regenerated = {}
    monkeypatch.setattr(lab_cli, "evaluate", lambda settings: regenerated.setdefault("settings", settings))
    monkeypatch.setattr(lab_cli, "write_report", lambda evaluation, out: regenerated.setdefault("out", out))
    assert lab_cli.main(words[3:]) == 0
    assert regenerated == {"settings": run[0].settings, "out": report}


def test_every_benchmark_has_every_method_both_ways_and_its_plot(report):
    parsed = tables(report.read_text())
    assert tuple(parsed) == BENCHMARKS
    for benchmark, rows in parsed.items():
        assert set(rows) == {(method, ranking) for method in METHODS for ranking in ("re-ranked", "plain")}, benchmark
        for values in rows.values():
            assert all(0.0 <= value <= 1.0 for value in values.values()), (benchmark, values)
        plot = report.parent / "evaluation" / f"{benchmark}.png"
        assert plot.read_bytes().startswith(b"\x89PNG") and f"(evaluation/{benchmark}.png)" in report.read_text()


def test_a_missing_finetuned_model_is_named_not_evaluated(report):
    text = report.read_text()
    assert "seed-1.onnx" in text and "**Fine-tuned model: missing.**" in text
    assert not any(method.startswith("fine-tuned") for rows in tables(text).values() for method, _ in rows)


def test_the_backbone_beats_chance_where_it_must(report):
    parsed = tables(report.read_text())
    for benchmark, metric in (("copy", "MRR"), ("copy", "mAP"), ("category", "mAP"), ("multiview", "MRR")):
        backbone = parsed[benchmark][("backbone", "re-ranked")][metric]
        chance = parsed[benchmark][("random", "re-ranked")][metric]
        assert backbone > chance + 0.1, (benchmark, metric, backbone, chance)


def test_re_ranking_collapses_copies_in_copy_detection_only_downwards(report):
    """Collapsing near-duplicates can only remove relevant copies from a list, never add them."""
    rows = tables(report.read_text())["copy"]
    for method in METHODS:
        assert rows[(method, "re-ranked")]["mAP"] <= rows[(method, "plain")]["mAP"] + 1e-9, method


def test_benchmark_queries_are_judged_against_their_own_gallery(run):
    benchmarks = run[0].benchmarks
    assert [benchmark.name for benchmark in benchmarks] == list(BENCHMARKS)
    for benchmark in benchmarks:
        gallery = set(benchmark.gallery)
        assert benchmark.queries, benchmark.name
        for query in benchmark.queries:
            assert query.key in gallery and query.key not in query.grades
            assert query.grades and set(query.grades) <= gallery
            assert set(query.grades.values()) <= {1, 2, 3, 4, 5}
    copy = benchmarks[2]
    assert {len(query.grades) for query in copy.queries} == {len(EDITS)}  # the source + the other edits
    assert {grade for query in copy.queries for grade in query.grades.values()} == {3, 4, 5}


def test_gallery_names_carry_no_hint_of_relevance(tmp_path):
    folder = GalleryFolder(tmp_path)
    key = folder.add(b"\x89PNG some bytes")
    assert re.fullmatch(r"[0-9a-f]+", key) and folder.add(b"\x89PNG some bytes") == key
    assert folder.read(key) == b"\x89PNG some bytes"


def test_acceptance_needs_the_floor_a_margin_above_the_seed_spread_and_an_interval_above_zero():
    sure = (0.05, 0.07)
    clear = Acceptance("category", backbone=0.30, finetuned=(0.36, 0.37, 0.35), interval=sure, floor=0.06)
    assert clear.margin == pytest.approx(0.06) and clear.spread == pytest.approx(0.02) and clear.passed
    noisy = Acceptance("category", backbone=0.30, finetuned=(0.31, 0.45, 0.33), interval=sure, floor=0.03)
    assert noisy.margin > 0.03 and not noisy.passed
    too_few = Acceptance("category", backbone=0.30, finetuned=(0.40, 0.41), interval=sure, floor=0.06)
    assert not too_few.passed
    short = Acceptance("copy", backbone=0.30, finetuned=(0.32, 0.32, 0.32), interval=(0.01, 0.03), floor=0.03)
    assert short.spread == 0 and not short.passed, "a margin above the spread but below the floor"
    unsure = Acceptance("category", backbone=0.30, finetuned=(0.37, 0.37, 0.37), interval=(-0.01, 0.15), floor=0.06)
    assert not unsure.passed, "an interval that includes zero"
    worse = Acceptance("fragment", backbone=0.30, finetuned=(0.28, 0.28, 0.28), interval=(-0.03, -0.01), floor=0.06)
    assert worse.spread == 0 and not worse.passed


def test_without_a_floor_acceptance_asks_only_that_the_queries_show_no_loss():
    level = Acceptance("multiview", backbone=0.80, finetuned=(0.79, 0.80, 0.78), interval=(-0.06, 0.02), floor=None)
    assert level.margin < 0 and level.passed
    loss = Acceptance("multiview", backbone=0.80, finetuned=(0.70, 0.70, 0.70), interval=(-0.15, -0.05), floor=None)
    assert not loss.passed


def test_copy_detection_is_broken_down_by_edit_and_every_edit_must_gain():
    benchmark = SimpleNamespace(name="copy", queries=[SimpleNamespace(kind=k) for k in ("crop", "crop", "blur", "blur")])
    scores = {
        "backbone": np.array([0.5, 0.7, 0.2, 0.4]),
        "fine-tuned 1": np.array([0.6, 0.8, 0.3, 0.4]),
        "fine-tuned 2": np.array([0.6, 0.8, 0.3, 0.5]),
    }
    evaluation = SimpleNamespace(
        benchmarks=[benchmark],
        methods=[SimpleNamespace(name=name, finetuned=name != "backbone") for name in scores],
        get=lambda name, method: SimpleNamespace(average_precisions=scores[method]),
    )
    crop, blur = gains_by_kind(evaluation, "copy")
    assert (crop.kind, crop.queries, blur.kind) == ("crop", 2, "blur")
    assert crop.gain == pytest.approx(0.1) and blur.gain == pytest.approx(0.075), "seeds are averaged per query"
    text = "\n".join(evaluation_report._edit_kinds_section([crop, blur]))
    assert "| blur | 2 | 0.300 | 0.375 | +0.075 |" in text and "Weakest gain: blur, +0.075 (floor +0.05): pass" in text
    scores["fine-tuned 2"][3] = 0.2
    crop, blur = gains_by_kind(evaluation, "copy")
    text = "\n".join(evaluation_report._edit_kinds_section([crop, blur]))
    assert "Below the backbone: none" in text and ": fail." in text, "blur gains +0.025, under the floor"


def test_the_paired_interval_brackets_the_margin_and_sees_through_noise():
    rng = np.random.default_rng(0)
    backbone = rng.uniform(0, 1, 2000)
    same_gain = paired_interval(backbone, [backbone + 0.05] * 3, seed=1)
    assert same_gain == pytest.approx((0.05, 0.05)), "every query gaining 0.05 leaves no doubt"
    noise = rng.normal(0, 0.2, 2000)
    low, high = paired_interval(backbone, [backbone + noise - noise.mean()] * 3, seed=1)
    assert low < 0 < high, f"gains that average zero gave ({low:.4f}, {high:.4f})"
    low, high = paired_interval(backbone, [backbone + 0.03 + noise] * 3, seed=1)
    assert 0 < low < 0.03 + noise.mean() < high, f"a real gain of 0.03 in noise gave ({low:.4f}, {high:.4f})"
    assert high - low == pytest.approx(2 * 1.96 * 0.2 / np.sqrt(2000), rel=0.15), "not the width a mean of 2000 noisy gains has"
    seeds = [backbone + 0.02, backbone + 0.04, backbone + 0.06]
    assert paired_interval(backbone, seeds, seed=1) == pytest.approx((0.04, 0.04)), "seeds are averaged per query"


@pytest.mark.usefixtures("tiny_imagenet_val_tar")
def test_the_backbone_posing_as_three_seeds_is_not_accepted_and_its_interval_is_zero(tmp_path, model_path):
    """The same model as backbone and as every seed: margin, spread and interval are all exactly 0,
    and a margin of 0 does not clear a spread of 0."""
    out = tmp_path / "EVALUATION.md"
    evaluation = evaluate(Settings(model_path, (model_path,) * 3, DATASETS_ROOT, LIMIT, seed=1), progress=False)
    write_report(evaluation, out)
    section = out.read_text()[out.read_text().index("## Acceptance") : out.read_text().index("## Results")]
    assert "95% interval" in section and "paired bootstrap" in section
    row = next(line for line in section.splitlines() if line.startswith("| category"))
    assert re.search(r"\| 0\.\d{4} \| (0\.\d{4}, ){2}0\.\d{4} \| .* \| [+-]0\.0000 \| \+0\.06 \| \[[+-]0\.0000, [+-]0\.0000\] \| fail \|", row), row
    assert "**Not accepted** on category, fragment, copy, copy-detection edits" in section, "multi-view's no-loss check passes"
    assert "| multiview |" in section and "Copy detection by edit" in section


def test_the_accepted_verdict_names_the_benchmarks(monkeypatch):
    checks = [
        Acceptance("category", 0.150, (0.2121, 0.2122, 0.2120), (0.060, 0.064), 0.06),
        Acceptance("multiview", 0.787, (0.780, 0.781, 0.779), (-0.04, 0.03), None),
    ]
    kinds = [KindGain("crop 10%", 49, 0.40, 0.46)]
    monkeypatch.setattr(evaluation_report, "acceptance", lambda evaluation: checks)
    monkeypatch.setattr(evaluation_report, "gains_by_kind", lambda evaluation, name: kinds)
    text = "\n".join(evaluation_report._acceptance_section(SimpleNamespace(missing=[])))
    assert "**Accepted** on category, multiview and on every copy-detection edit." in text
    assert "| category | 0.1500 | 0.2121, 0.2122, 0.2120 | 0.2121 +- 0.0001 | 0.0002 | +0.0621 | +0.06 | [+0.0600, +0.0640] | pass |" in text
    assert "| multiview | 0.7870 | 0.7800, 0.7810, 0.7790 | 0.7800 +- 0.0010 | 0.0020 | -0.0070 | no loss | [-0.0400, +0.0300] | pass |" in text
    kinds[0] = KindGain("crop 10%", 49, 0.40, 0.42)
    text = "\n".join(evaluation_report._acceptance_section(SimpleNamespace(missing=[])))
    assert "**Not accepted** on copy-detection edits." in text
