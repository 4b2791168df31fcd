"""docs/EVALUATION.md and its plots, written from one Evaluation: nothing in it is edited by hand,
so the numbers, the text that reads them and the command that made them always agree."""

import hashlib
import os
import shlex
from pathlib import Path

import numpy as np

from lab import metrics
from lab.datasets import DATASETS_ROOT
from lookalike.paths import default_model_path
from lab.evaluation import (
    CUTOFF,
    BOOTSTRAP_RESAMPLES,
    DEFAULT_SEED,
    DEPTH,
    MIN_SEEDS,
    TABLE_METRICS,
    WEAKEST_EDIT_GAIN,
    Acceptance,
    Evaluation,
    KindGain,
    Settings,
    acceptance,
    gains_by_kind,
)
from lookalike.ranking import DEDUPE_THRESHOLD

PLOTS_FOLDER = "evaluation"

METHOD_NOTES = {
    "random": "a Gaussian vector per picture, seeded by its pixels: the ranking chance gives.",
    "colour histogram": "joint RGB histogram (8 x 8 x 8 cells), square-rooted so the cosine is the"
    " Bhattacharyya coefficient: global colour, no layout.",
    "perceptual hash": "DCT pHash (grey 32 x 32, the 8 x 8 lowest frequencies against their median),"
    " 64 bits as a +-1/8 vector: the cosine is 1 - 2 Hamming / 64, exactly the Hamming similarity.",
    "backbone": "the raw pretrained EfficientNet-Lite0 ONNX embedder (GeM-pooled, unit length), as served.",
}

MEANING = f"""\
- **MRR** (mean reciprocal rank): how high the first relevant result sits; 1 means always first,
  0.5 second on average. It is the metric of "find *the* picture" (copy detection).
- **P@1, P@{CUTOFF}**: the share of the first result / first page that is relevant, what a person sees.
- **R@{CUTOFF}**: the share of everything relevant that the first page holds. With 49 relevant images
  per category or fragment query, R@{CUTOFF} can reach at most {CUTOFF}/49 = {CUTOFF / 49:.2f} there; read it on copy
  detection and multi-view.
- **mAP**: precision averaged over the rank of every relevant item, within the top {DEPTH} (relevant
  items beyond count 0): one number for the whole ranking, the acceptance metric.
- **nDCG@{CUTOFF}**: the first page weighted by grade (exponential gains): on copy detection it rewards
  putting the source and mild copies (grade 5) above harsh ones (3-4); with one grade, as in the
  other benchmarks, it is the binary nDCG.
- **Random** is the floor: its mAP is about the share of the gallery that is relevant. A method
  near it on a benchmark has learned nothing that benchmark asks for.
- **Re-ranked vs plain**: re-ranking collapses gallery images whose vectors agree at cosine >=
  {DEDUPE_THRESHOLD} (ranking.DEDUPE_THRESHOLD) and keeps the best of each group. Where relevant
  items are near-duplicates of each other (the mild copies in copy detection) it removes some of
  them from the list on purpose, so recall and mAP can drop while the page a person sees shows more
  distinct pictures; elsewhere both rows are nearly equal. For the pHash, {DEDUPE_THRESHOLD} means
  identical hashes only.
- The Tiny ImageNet benchmarks (category, fragment) ask for the *kind* of thing, which a backbone
  pretrained on ImageNet classes knows and colour or hashes do not; copy detection and multi-view
  ask for the *same* thing (photo or building), where local structure matters. Tiny ImageNet is
  drawn from ImageNet, so its validation images may have been among the backbone's pretraining
  images: that favours the backbone and every model built on it alike. Fine-tuning trains on Tiny
  ImageNet's training split: the same 202 classes, never these validation images, so category and
  fragment measure new images of known classes; copy detection and multi-view hold photos that no
  training step saw.
"""


def write_report(evaluation: Evaluation, out: Path) -> None:
    """Write `out` (markdown) and one P@k / R@k plot per benchmark under `out`'s folder."""
    plots = out.parent / PLOTS_FOLDER
    plots.mkdir(parents=True, exist_ok=True)
    for benchmark in evaluation.benchmarks:
        _plot(evaluation, benchmark.name, plots / f"{benchmark.name}.png")
    out.write_text(_markdown(evaluation, out))


def command_line(settings: Settings, out: Path) -> str:
    """The command that regenerates the report, defaults left out."""
    words = ["python", "-m", "lab", "evaluate"]
    if settings.backbone != default_model_path():
        words += ["--model", _shown(settings.backbone)]
    for path in settings.finetuned:
        words += ["--model-finetuned", _shown(path)]
    if settings.datasets != DATASETS_ROOT:
        words += ["--datasets", _shown(settings.datasets)]
    if settings.limit is not None:
        words += ["--limit", str(settings.limit)]
    if settings.seed != DEFAULT_SEED:
        words += ["--seed", str(settings.seed)]
    words += ["--out", _shown(out)]
    return shlex.join(words)


def _shown(path: Path) -> str:
    """Relative to the working directory when inside it, so the command reads the same anywhere."""
    absolute = Path(path).absolute()
    return str(absolute.relative_to(Path.cwd())) if absolute.is_relative_to(Path.cwd()) else str(path)


def _markdown(evaluation: Evaluation, out: Path) -> str:
    settings = evaluation.settings
    lines = [
        "# Offline evaluation",
        "",
        "Generated by `python -m lab evaluate`; do not edit by hand. Regenerate this file and the plots under",
        f"`{PLOTS_FOLDER}/` with:",
        "",
        f"    {command_line(settings, out)}",
        "",
        f"This run took {evaluation.seconds / 60:.1f} min wall time on {os.cpu_count()} CPU cores"
        + (f" (smoke size: --limit {settings.limit})." if settings.limit is not None else "."),
        "",
        "## Acceptance: fine-tuned model vs raw backbone",
        "",
        *_acceptance_section(evaluation),
        "",
        "## Results",
        "",
        f"Means over queries; each query judges its top {DEPTH} results. Re-ranked = the service's default"
        " policy (near-duplicates collapsed); plain = dedupe off. Both leave out the query's own image.",
        "",
    ]
    for benchmark in evaluation.benchmarks:
        queries = evaluation.get(benchmark.name, evaluation.methods[0].name).queries
        lines += [
            f"### {benchmark.title} (`{benchmark.name}`: {queries} queries, gallery of {len(set(benchmark.gallery))})",
            "",
            _table(evaluation, benchmark.name),
            "",
            f"![Precision@k and Recall@k, {benchmark.title}]({PLOTS_FOLDER}/{benchmark.name}.png)",
            "",
        ]
    lines += ["## What the numbers say", "", *_findings(evaluation), "", "## How to read them", "", MEANING]
    lines += ["## Benchmarks: data and graded relevance", ""]
    for benchmark in evaluation.benchmarks:
        lines += [f"### {benchmark.title}", "", f"Data: {benchmark.data}", "", f"Relevance: {benchmark.relevance}", ""]
        lines += [f"Note: {note}" for note in benchmark.notes] + ([""] if benchmark.notes else [])
    lines += ["## Methods", "", *_methods_section(evaluation), "", "## Settings", "", *_settings_section(evaluation)]
    lines += ["", "## Metric definitions (lab.metrics)", "", *_quoted(metrics.__doc__)]
    return "\n".join(lines).rstrip() + "\n"


def _table(evaluation: Evaluation, benchmark: str) -> str:
    rows = [
        "| method | ranking | " + " | ".join(TABLE_METRICS) + " |",
        "| --- | --- | " + " | ".join("---:" for _ in TABLE_METRICS) + " |",
    ]
    for method in evaluation.methods:
        for reranked in (True, False):
            values = evaluation.get(benchmark, method.name, reranked).values
            cells = " | ".join(f"{values[name]:.3f}" for name in TABLE_METRICS)
            rows.append(f"| {method.name} | {'re-ranked' if reranked else 'plain'} | {cells} |")
    return "\n".join(rows)


def _acceptance_section(evaluation: Evaluation) -> list[str]:
    lines = [
        "Acceptance: on held-out data the fine-tuned model must beat the raw backbone on mAP (re-ranked rows)"
        " by at least the floor of each benchmark, by more than the spread (max - min) over at least"
        f" {MIN_SEEDS} training seeds (one `--model-finetuned` file per seed), with a 95% interval above zero;"
        " where there is no floor (multi-view: 31 queries), the interval must reach zero or above (no loss"
        " the queries can show). The interval is a 95% paired bootstrap over queries (per-query AP,"
        f" fine-tuned averaged over seeds, minus the backbone's; {BOOTSTRAP_RESAMPLES:,} resamples): how much"
        " the margin owes to which queries the benchmark holds, where the spread says how much it owes to"
        " training randomness.",
        "",
    ]
    if evaluation.missing:
        lines += [f"Missing fine-tuned model file(s), not evaluated: {', '.join(f'`{p}`' for p in evaluation.missing)}.", ""]
    checks = acceptance(evaluation)
    if not checks:
        return lines + ["**Fine-tuned model: missing.** No fine-tuned model was evaluated, so the acceptance test did not run."]
    seeds = len(checks[0].finetuned)
    lines += [
        "| benchmark | backbone mAP | fine-tuned mAP per seed | mean +- std | spread | margin | floor | 95% interval | verdict |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    lines += [_acceptance_row(check) for check in checks]
    lines.append("")
    kinds = gains_by_kind(evaluation, "copy")
    if seeds < MIN_SEEDS:
        lines.append(f"Only {seeds} fine-tuned model(s): the spread needs at least {MIN_SEEDS} seeds, so no verdict.")
    elif all(check.passed for check in checks) and _edits_pass(kinds):
        names = ", ".join(check.benchmark for check in checks)
        lines.append(f"**Accepted** on {names} and on every copy-detection edit.")
    else:
        failed = [check.benchmark for check in checks if not check.passed] + ([] if _edits_pass(kinds) else ["copy-detection edits"])
        lines.append(
            f"**Not accepted** on {', '.join(failed)}. The evaluation data were not used to tune anything;"
            " see \"What the numbers say\" for the per-benchmark picture."
        )
    return lines + ["", *_edit_kinds_section(kinds)] if kinds else lines


def _acceptance_row(check: Acceptance) -> str:
    """Four decimals: three seeds of one training recipe can agree to the third."""
    per_seed = ", ".join(f"{value:.4f}" for value in check.finetuned)
    std = "n/a" if np.isnan(check.std) else f"{check.std:.4f}"
    verdict = "pass" if check.passed else ("no verdict" if len(check.finetuned) < MIN_SEEDS else "fail")
    floor = "no loss" if check.floor is None else f"+{check.floor:.2f}"
    low, high = check.interval
    return (
        f"| {check.benchmark} | {check.backbone:.4f} | {per_seed} | {check.mean:.4f} +- {std} |"
        f" {check.spread:.4f} | {check.margin:+.4f} | {floor} | [{low:+.4f}, {high:+.4f}] | {verdict} |"
    )


def _edits_pass(kinds: list[KindGain]) -> bool:
    """No kind below the backbone and the weakest gaining WEAKEST_EDIT_GAIN: every kind gains that much."""
    return all(kind.gain >= WEAKEST_EDIT_GAIN for kind in kinds)


def _edit_kinds_section(kinds: list[KindGain]) -> list[str]:
    """Copy detection broken down by edit: instance training must lift the weakest kind, not trade one kind for another."""
    weakest = min(kinds, key=lambda kind: kind.gain)
    lines = [
        "Copy detection by edit (mAP of the queries made by each edit; fine-tuned averaged over seeds):",
        "",
        "| edit | queries | backbone | fine-tuned | gain |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    lines += [f"| {k.kind} | {k.queries} | {k.backbone:.3f} | {k.finetuned:.3f} | {k.gain:+.3f} |" for k in kinds]
    below = [kind.kind for kind in kinds if kind.gain < 0]
    lines += [
        "",
        f"Below the backbone: {', '.join(below) if below else 'none'}. Weakest gain: {weakest.kind}, {weakest.gain:+.3f}"
        f" (floor +{WEAKEST_EDIT_GAIN:.2f}): {'pass' if _edits_pass(kinds) else 'fail'}.",
    ]
    return lines


def _findings(evaluation: Evaluation) -> list[str]:
    """Sentences read off the table (re-ranked rows unless said otherwise)."""
    lines = []
    baselines = [m.name for m in evaluation.methods if m.model_file is None and m.name != "random"]
    learned = [m.name for m in evaluation.methods if m.model_file is not None]
    for benchmark in evaluation.benchmarks:
        name = benchmark.name
        mean_ap = {m.name: evaluation.get(name, m.name).values["mAP"] for m in evaluation.methods}
        best = max(mean_ap, key=mean_ap.get)
        best_baseline = max(baselines, key=mean_ap.get)
        sentence = (
            f"- **{benchmark.title}**: best mAP {mean_ap[best]:.3f} ({best}); random {mean_ap['random']:.3f};"
            f" best baseline {best_baseline} {mean_ap[best_baseline]:.3f}"
        )
        for method in learned:
            ratio = mean_ap[method] / mean_ap[best_baseline] if mean_ap[best_baseline] else float("inf")
            sentence += f"; {method} {mean_ap[method]:.3f} ({ratio:.1f}x the best baseline)"
        plain = evaluation.get(name, "backbone", reranked=False).values
        reranked = evaluation.get(name, "backbone").values
        sentence += (
            f". Re-ranking changes the backbone's mAP by {reranked['mAP'] - plain['mAP']:+.3f}"
            f" and its R@{CUTOFF} by {reranked[f'R@{CUTOFF}'] - plain[f'R@{CUTOFF}']:+.3f}."
        )
        lines.append(sentence)
    return lines


def _methods_section(evaluation: Evaluation) -> list[str]:
    lines = []
    for method in evaluation.methods:
        info = evaluation.infos[method.name]
        if method.model_file is None:
            lines.append(f"- **{method.name}** ({info.dim}-d): {METHOD_NOTES[method.name]}")
            continue
        digest = hashlib.sha256(method.model_file.read_bytes()).hexdigest()[:12]
        note = METHOD_NOTES.get(method.name, "a fine-tuned embedder (model_export.train), as served.")
        lines.append(
            f"- **{method.name}** ({info.dim}-d): {note} File `{_shown(method.model_file)}`,"
            f" model {info.name} version {info.version}, sha256 {digest}."
        )
    return lines


def _settings_section(evaluation: Evaluation) -> list[str]:
    settings = evaluation.settings
    timings = ", ".join(f"{name} {seconds / 60:.1f} min" for name, seconds in evaluation.method_seconds.items())
    return [
        f"- Seed {settings.seed} (the copy-detection crops and positions, the random baseline).",
        f"- Size: {'everything' if settings.limit is None else f'--limit {settings.limit} (smoke size)'};"
        f" datasets from `{_shown(settings.datasets)}`.",
        f"- Depth: the top {DEPTH} results per query; table cut-off k = {CUTOFF}.",
        "- Index: a fresh embedded FAISS store per benchmark and method, exact inner-product search"
        " (the `flat` method), filled by the Indexer; queries through the SearchService.",
        f"- Re-ranking: near-duplicate threshold {DEDUPE_THRESHOLD} (cosine).",
        f"- Wall time per method (embedding, indexing, both rankings, all benchmarks): {timings}.",
    ]


def _quoted(text: str) -> list[str]:
    return [f"> {line}".rstrip() for line in text.strip().splitlines()]


def _plot(evaluation: Evaluation, benchmark: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    ks = np.arange(1, DEPTH + 1)
    figure, (left, right) = pyplot.subplots(1, 2, figsize=(11, 4.2))
    colours = pyplot.get_cmap("tab10")
    for index, method in enumerate(evaluation.methods):
        for reranked in (True, False):
            scores = evaluation.get(benchmark, method.name, reranked)
            style = {"color": colours(index % 10), "linestyle": "-" if reranked else "--", "linewidth": 1.4}
            label = method.name if reranked else None
            left.plot(ks, scores.precision, label=label, **style)
            right.plot(ks, scores.recall, **style)
    for axis, name in ((left, "Precision@k"), (right, "Recall@k")):
        axis.set_xscale("log")
        axis.set_xlabel("k (results looked at)")
        axis.set_ylabel(name)
        axis.set_ylim(0, 1.02)
        axis.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8, title="solid: re-ranked, dashed: plain", title_fontsize=8)
    figure.suptitle(f"{benchmark}: Precision@k and Recall@k")
    figure.tight_layout()
    figure.savefig(path, dpi=110, metadata={"Software": None})
    pyplot.close(figure)
