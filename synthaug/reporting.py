"""The report's parts (stage ``report``): the verdict in words, the results, quality and study
tables (HTML, and Markdown for the README), training curves, galleries of every synthetic source,
where each real split came from, and provenance — every image inlined as a data: URI."""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import html
import io
import logging
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from PIL import Image

from synthaug import checksums, layout
from synthaug.cli import read_timings
from synthaug.files import read_json, read_jsonl, write_bytes
from synthaug.images import contact_sheet, read_yolo_boxes
from synthaug.layout import Dataset, Real, Source, Study, Timings, history_file, label_of, variant_name
from synthaug.metrics import METRICS, regime_rows, regime_shots
from synthaug.params import Params

log = logging.getLogger("report")
METRIC_LABELS = {m.name: m.label for m in METRICS}  # both renderings (HTML and Markdown) follow the spec
CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1180px;
color:#1d1d1f;padding:0 16px}
h1{font-size:24px;margin-bottom:4px}h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;margin:8px 0 16px}th,td{padding:4px 10px;border-bottom:1px solid #eee;text-align:right}
th:first-child,td:first-child{text-align:left}thead th{background:#f5f5f7}
.gain{color:#0a7d28;font-weight:600}.loss{color:#b3261e;font-weight:600}.muted{color:#777}
.gallery img,.plot img{image-rendering:pixelated;display:block}.gallery td{text-align:left;vertical-align:middle}
.gallery img{height:auto;max-width:100%}figure{margin:0 0 16px}figcaption{color:#555}
code{background:#f5f5f7;padding:1px 4px;border-radius:3px}
"""


def data_uri(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def figure_uri(fig: plt.Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def strip(files: Sequence[Path], boxes: Sequence[Sequence[Sequence[float]]] | None = None, tile: int = 64) -> str:
    """One gallery row: a contact sheet of ``files`` as an <img> (boxes drawn if given)."""
    tiles = [Image.open(f) for f in files]
    sheet = contact_sheet(tiles, columns=max(1, len(tiles)), boxes=boxes, tile=tile)
    return f'<img alt="gallery row" src="{data_uri(sheet)}" width="{sheet.width}">'


def mean_text(row: dict | None, signed: bool = False) -> str:
    """``mean ± half-width`` of a summary row, ``(1 seed)`` where there is no interval."""
    if row is None:
        return "—"
    text = f"{row['mean']:+.3f}" if signed else f"{row['mean']:.3f}"
    return text + (f" ± {row['ci95']:.3f}" if row["ci95"] is not None else " (1 seed)")


def diff_text(row: dict | None) -> str:
    """A paired difference with its interval, Holm-adjusted p-value and the seeds it pairs (a variant
    may train more seeds in a regime than another: variants.<v>.seeds)."""
    if row is None:
        return "—"
    holm = f", p_Holm {row['p_holm']:.3f}" if row.get("p_holm") is not None else ""
    return mean_text(row, True) + holm + (f", {row['n']} seeds" if row.get("n", 1) > 1 else "")


def fmt(row: dict | None, signed: bool = False, alpha: float = 0.0) -> str:
    """:func:`mean_text` (or :func:`diff_text`) for HTML: a difference that survives Holm's
    adjustment at ``alpha`` is coloured; one whose interval merely excludes 0 is underlined."""
    text = html.escape(diff_text(row) if signed else mean_text(row)).replace(
        "(1 seed)", '<span class="muted">(1 seed)</span>'
    )
    if signed and row is not None and row.get("p_holm") is not None and row["p_holm"] < alpha:
        return f'<span class="{"gain" if row["mean"] > 0 else "loss"}">{text}</span>'
    if signed and row is not None and row["ci95"] is not None and abs(row["mean"]) > row["ci95"]:
        return f"<u>{text}</u>"
    return text


def metric_verdict(summary: dict, regime: str, metric: str, label: str) -> str | None:
    """One sentence: which variants beat the baseline on ``metric`` in ``regime`` after Holm's adjustment,
    and which comparisons are undecided (with their intervals)."""
    info, ref = summary["variants"], summary.get("reference")
    rows = {
        v: r[metric]
        for v, r in regime_rows(summary, regime).items()
        if "diff_vs_baseline" in r.get(metric, {}) and not (info[v]["source"] == "real/pool" and v != ref)
    }  # the smaller real pools are the exchange curve's points, read in its own sentence
    if not rows:
        return None
    diffs = {v: r["diff_vs_baseline"] for v, r in rows.items()}
    winners = [v for v, d in diffs.items() if d.get("beats_baseline")]
    losers = [
        v for v, d in diffs.items() if d["p_holm"] is not None and d["p_holm"] < summary["alpha"] and d["mean"] < 0
    ]
    undecided = [v for v in diffs if v not in winners and v not in losers]
    shots = regime_shots(regime)
    text = f"{label} at {shots} real image{'s' if shots > 1 else ''} per class: "
    said = []
    if winners:
        said.append(
            ", ".join(f"{v} ({diffs[v]['mean']:+.3f}, p_Holm {diffs[v]['p_holm']:.3f})" for v in winners)
            + f" beat{'s' if len(winners) == 1 else ''} the baseline"
        )
    if losers:
        said.append(", ".join(f"{v} ({diffs[v]['mean']:+.3f})" for v in losers) + " fall below it")
    if undecided:
        said.append("undecided: " + ", ".join(f"{v} {mean_text(diffs[v], True)}" for v in undecided))
    return text + "; ".join(said) + "."


def exchange_verdict(summary: dict, regime: str) -> str | None:
    """What each synthetic variant is worth in real images per class, read off the real-pool curve."""
    rates = summary.get("exchange", {}).get(regime)
    if not rates or not rates["variants"]:
        return None
    top = max(p["real_per_class"] for p in rates["curve"].values())
    parts = [
        f"{v} ≈ {'≥ ' if r['at_curve_end'] else ''}{r['real_per_class']:.1f} [{r['ci95'][0]:.1f}, {r['ci95'][1]:.1f}]"
        for v, r in rates["variants"].items()
    ]
    return (
        f"At {regime_shots(regime)} shots, extra real images per class each synthetic source is worth (95% bootstrap "
        f"interval; the real curve ends at {top}): " + ", ".join(parts) + "."
    )


def verdict(summary: dict) -> list[str]:
    """The answer in words, per regime: which variants beat the baseline after Holm's adjustment over
    the whole family, which are undecided, and what each synthetic variant is worth in real images."""
    lines = []
    regimes = list(summary.get("regimes", {None: None}))
    for regime in regimes:
        for m in METRICS:
            if m.headline and (line := metric_verdict(summary, regime or "", m.name, m.label) if regime else None):
                lines.append(line)
        if regime and (line := exchange_verdict(summary, regime)):
            lines.append(line)
    if "families" in summary:
        n = summary["families"].get("verdict", 0)
        lines.append(f"Holm's adjustment runs over the {n} comparisons above together (α = {summary['alpha']:g}).")
    steps = summary["budget"]["yolo_optimizer_steps"]
    counts = sorted({n for runs in steps.values() for n in runs})
    lines.append(
        f"Every detector took {counts[0]} optimiser steps."
        if summary["budget"]["yolo_equal"]
        else f"Warning: the detectors took different numbers of optimiser steps ({counts}); their "
        "comparison is not fair."
    )
    return lines


def shots_figure(summary: dict) -> Any:
    """The headline: test accuracy against real shots per class, a line per variant, with its 95% interval."""
    regimes = list(summary["regimes"])
    shots = [regime_shots(r) for r in regimes]
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for v in summary["variants"]:
        rows = [summary["regimes"][r].get(v, {}).get("accuracy") for r in regimes]
        if any(row is None for row in rows):
            continue
        ax.errorbar(
            shots, [r["mean"] for r in rows], yerr=[r["ci95"] or 0 for r in rows], marker="o", capsize=3, label=v
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(shots, [str(k) for k in shots])
    ax.set_xlabel("real train images per class")
    ax.set_ylabel("ResNet test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def exchange_figure(summary: dict) -> Any:
    """Accuracy against extra real images per class (the real-pool curve), one panel per regime, with each
    synthetic variant placed where its accuracy meets the curve."""
    regimes = [r for r, e in summary["exchange"].items() if e["variants"]]
    fig, axes = plt.subplots(1, len(regimes), figsize=(4.3 * len(regimes), 3.4), squeeze=False)
    for ax, r in zip(axes[0], regimes):
        curve = sorted(summary["exchange"][r]["curve"].values(), key=lambda p: p["real_per_class"])
        xs = [p["real_per_class"] for p in curve]
        ax.errorbar(
            xs,
            [p["mean"] for p in curve],
            yerr=[p["ci95"] or 0 for p in curve],
            color="k",
            marker="s",
            capsize=3,
            label="real pool",
        )
        for v, rate in summary["exchange"][r]["variants"].items():
            acc = summary["regimes"][r][v]["accuracy"]["mean"]
            lo, hi = rate["ci95"]
            ax.errorbar(
                [rate["real_per_class"]],
                [acc],
                xerr=[[rate["real_per_class"] - lo], [hi - rate["real_per_class"]]],
                marker="o",
                capsize=3,
                linestyle="none",
                label=v,
            )
        ax.set_title(f"{regime_shots(r)} shots")
        ax.set_xlabel("extra real images per class")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("ResNet test accuracy")
    axes[0][-1].legend(fontsize=8)
    return fig


def headline_section(summary: dict, shots_png: Path, exchange_png: Path) -> str:
    """The shots figure and the exchange-rate figure (also written as PNGs, for the README)."""
    parts = []
    for fig, png, alt, caption in (
        (
            shots_figure(summary),
            shots_png,
            "accuracy against real shots",
            "Test accuracy against real train images per class (mean over seeds, 95% t interval); each seed "
            "redraws the real images, the same for every variant.",
        ),
        (
            exchange_figure(summary),
            exchange_png,
            "exchange rate",
            "The real-pool curve (baseline at 0 extra) and each synthetic source at the real count it matches "
            "(95% bootstrap interval over seeds).",
        ),
    ):
        if fig is None:
            continue
        uri = figure_uri(fig)
        write_bytes(png, base64.b64decode(uri.split(",", 1)[1]))
        parts.append(
            f'<figure class="plot"><img alt="{alt}" src="{uri}" width="100%">'
            f"<figcaption>{caption}</figcaption></figure>"
        )
    return "".join(parts)


def results_table(summary: dict) -> str:
    head = "".join(f"<th>{label}</th><th>Δ vs baseline</th>" for label in METRIC_LABELS.values())
    said = "".join(f"<li>{html.escape(line)}</li>" for line in verdict(summary))
    tables = []
    for regime in summary.get("regimes", {None: None}):
        rows = []
        for name, v in regime_rows(summary, regime).items():
            cells = "".join(
                f"<td>{fmt(v.get(m))}</td><td>{fmt(v.get(m, {}).get('diff_vs_baseline'), True, summary['alpha'])}</td>"
                for m in METRIC_LABELS
            )
            info = summary["variants"][name]
            count = f", {info['per_class']} per class" if info.get("per_class") else ""
            rows.append(
                f"<tr><td><b>{html.escape(name)}</b><br><span class='muted'>{html.escape(info['source'])}, "
                f"ratio {info['ratio']:g}{count}</span></td>{cells}</tr>"
            )
        title = f"<h3>{regime_shots(regime)} real images per class</h3>" if regime else ""
        tables.append(
            f'{title}<table class="results" id="results-{regime or "all"}"><thead><tr><th>variant</th>{head}'
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )
    return (
        f'<ul id="verdict">{said}</ul>' + "".join(tables) + "<p class='muted'>Mean over seeds ± half-width of the "
        "95% Student-t interval; Δ is the paired difference to <code>baseline</code> with the same seed (the "
        "same real images), with its paired t-test p-value adjusted by Holm's method over the verdict's family "
        "(accuracy and mAP50-95 in every regime; macro-F1 and mAP50 each form their own). Green/red: "
        "significant after adjustment; underlined: the interval alone excludes 0. — : not measured (a "
        "detector trains only at the full train set, for <code>trials.yolo_variants</code>). "
        "<code>real_pool</code> adds the same number of <em>real</em> digits from the pool the builtin "
        "generator learned from: a synthetic variant should be read against it.</p>"
    )


def data_section(real: Path) -> str:
    """Where each real split came from (prepare's ``splits.json``), and what that means for reading
    the results when the user's data has no separate pool."""
    origin = read_json(Real(real).splits_file)
    rows = "".join(
        f"<tr><td>{kind}/{html.escape(split)}</td><td>{html.escape(text)}</td></tr>"
        for kind, splits in origin.items()
        for split, text in splits.items()
    )
    note = ""
    if origin["cls"]["pool"].startswith("the train split"):
        note = (
            "<p><b>The pool is the train split itself</b> (no <code>cls/pool/</code> folder): the builtin "
            "generator learned from the train images, and <code>real/pool</code> adds copies of them, not new "
            "images — it is no real-data reference here. Give a <code>pool/</code> folder for one.</p>"
        )
    return f"<table id='splits'><thead><tr><th>split</th><th>from</th></tr></thead><tbody>{rows}</tbody></table>{note}"


def with_seconds(summary: dict, study_rows: list[dict], timings: Timings) -> None:
    """Add the measured seconds per image (timings/, which no stage depends on) to the quality
    sources and the study's rows, for display; a source never timed on this checkout shows none."""

    def seconds(stage: str, item: str, part: str) -> float | None:
        path = timings.of(stage, item)
        return read_json(path).get(part, {}).get("seconds_per_image") if path.is_file() else None

    for source, q in summary["quality"].items():
        kind, name = source.split("/", 1)
        if (s := seconds(kind, name, "cls")) is not None:
            q["seconds_per_image"] = s
    for r in study_rows:
        if (s := seconds("study", r["scheduler"], f"steps_{r['steps']}")) is not None:
            r["seconds_per_image"] = s


def kid_text(scores: dict) -> str:
    """KID with its spread over subsets (— for scores made before KID)."""
    return f"{float(scores['kid']):.4f} ± {float(scores['kid_std']):.4f}" if scores.get("kid") else "—"


def quality_table(summary: dict) -> str:
    cols = [
        ("conditional_accuracy", "conditional accuracy", "{:.3f}"),
        ("kid", "KID ± spread", "{:.4f}"),
        ("frechet_distance", "Fréchet distance", "{:.2f}"),
        ("cas", "CAS", "{:.3f}"),
        ("seconds_per_image", "s / image", "{:.4f}"),
        ("box_survival", "box survival", "{:.3f}"),
        ("box_recall_real", "detector recall on real", "{:.3f}"),
    ]
    rows = []
    for source, q in summary["quality"].items():
        cells = "".join(
            f"<td>{kid_text(q) if k == 'kid' else f.format(q[k]) if k in q else '—'}</td>" for k, _, f in cols
        )
        rows.append(f"<tr><td>{html.escape(source)}</td>{cells}</tr>")
    head = "".join(f"<th>{label}</th>" for _, label, _ in cols)
    return f'<table id="quality"><thead><tr><th>source</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def study_figure(rows: list[dict]) -> Any:
    """The scheduler study (plots/study.csv's rows): quality and cost against steps, a line per scheduler."""
    schedulers = sorted({r["scheduler"] for r in rows}, key=[r["scheduler"] for r in rows].index)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for ax, (key, label) in zip(
        axes,
        (
            ("conditional_accuracy", "conditional accuracy ↑"),
            ("kid", "KID ↓"),
            ("seconds_per_image", "seconds per image"),
        ),
    ):
        for s in schedulers:
            pts = sorted((int(r["steps"]), float(r[key])) for r in rows if r["scheduler"] == s and key in r)
            if pts:
                ax.plot(*zip(*pts), marker="o", label=s)
        ax.set_xlabel("sampling steps")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    return fig


def seconds_text(row: dict) -> str:
    return f"{float(row['seconds_per_image']):.4f}" if "seconds_per_image" in row else "—"


def study_section(rows: list[dict], png: Path) -> str:
    uri = figure_uri(study_figure(rows))
    write_bytes(png, base64.b64decode(uri.split(",", 1)[1]))  # the same plot, for the README
    body = "".join(
        f"<tr><td>{html.escape(r['scheduler'])}</td><td>{r['steps']}</td>"
        f"<td>{float(r['conditional_accuracy']):.3f}</td><td>{kid_text(r)}</td>"
        f"<td>{float(r['frechet_distance']):.2f}</td><td>{seconds_text(r)}</td></tr>"
        for r in rows
    )
    return (
        f'<figure class="plot"><img id="study-plot" alt="scheduler study" src="{uri}" '
        'width="100%"><figcaption>Quality and cost against sampling steps, one line per scheduler.'
        '</figcaption></figure><table id="study"><thead><tr><th>scheduler</th><th>steps</th>'
        "<th>conditional accuracy</th><th>KID ± spread</th><th>Fréchet distance</th><th>s / image</th></tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def training_curves(
    variants: Sequence[str],
    seeds: Sequence[int],
    curves: Path,
    read: Callable[[Path], str] = Path.read_text,
    regime: str | None = None,
) -> Any:
    """ResNet val accuracy against step, the mean over seeds, a line per variant, from each run's
    history in ``curves`` (plots/train_resnet; ``read``: a file's text; the app reads an
    experiment's revision through DVC) in ``regime`` (None: a revision from before regimes)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    for variant in variants:
        runs = []
        for seed in seeds:
            path = history_file(curves / variant, seed, regime) if regime else history_file(curves, seed, variant)
            rows = csv.DictReader(io.StringIO(read(path)))
            runs.append([(int(r["step"]), float(r["val_accuracy"])) for r in rows])
        steps = [s for s, _ in runs[0]]
        ax.plot(steps, [sum(r[i][1] for r in runs) / len(runs) for i in range(len(steps))], label=variant)
    ax.set_xlabel("step")
    ax.set_ylabel("val accuracy (mean over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def curves_section(curves: Path, params: Params) -> str:
    """The training curves of the largest regime, for the variants that train in it (every regime's
    histories are in ``curves``)."""
    largest = params.trials.shots[-1]
    trained = [v for v, cfg in params.variants.items() if largest in (cfg.shots or params.trials.shots)]
    fig = training_curves(trained, params.trials.resnet_seeds, curves, regime=layout.regime(largest))
    return f'<figure class="plot"><img alt="training curves" src="{figure_uri(fig)}" width="640"></figure>'


def xpaste_variants(params: Params) -> list[str]:
    """The variants whose datasets hold X-Paste canvases."""
    return [v for v, c in params.variants.items() if c.source.startswith(("txt2img/", "real/")) and c.ratio > 0]


def check_gallery_images(args: argparse.Namespace, params: Params) -> None:
    """The report depends on the metrics that record which images the study, quality and assemble
    saw (their ``content_md5``), not on the folders of thousands it shows a few of: check that the
    folders are those images."""
    for scheduler in params.txt2img.schedulers:
        checksums.verify_recorded(args.study_metrics / f"{scheduler}.json", args.study / scheduler)
    for s in params.img2img.strengths:
        source = Source.of(args.synthetic, f"img2img/{s:g}")
        checksums.verify_recorded(args.quality / "img2img" / f"{s:g}.json", source.root)
    for variant in xpaste_variants(params):
        dataset = Dataset.of(args.datasets, variant)
        checksums.verify_recorded(args.assemble / f"{variant}.json", *dataset.split_folders())


def galleries(args: argparse.Namespace, params: Params, classes: list[str]) -> str:
    check_gallery_images(args, params)
    k = params.report.gallery_per_class
    out = ["<h3>txt2img: the same prompts and seeds per scheduler and step count</h3><table class='gallery'>"]
    first = params.txt2img.schedulers[0]
    pick = [sorted((Study(args.study / first).steps(params.study.steps[0]) / c).glob("*.png"))[:k] for c in classes]
    names = [f"{f.parent.name}/{f.name}" for files in pick for f in files]
    for scheduler in params.txt2img.schedulers:
        for steps in params.study.steps:
            files = [Study(args.study / scheduler).steps(steps) / n for n in names]
            out.append(f"<tr><td>{scheduler}, {steps} steps</td><td>{strip(files)}</td></tr>")
    out.append("</table><h3>img2img: each strength next to its source</h3><table class='gallery'>")
    strengths = [f"{s:g}" for s in params.img2img.strengths]
    sources = {s: Source.of(args.synthetic, f"img2img/{s}") for s in strengths}
    manifest = read_jsonl(sources[strengths[0]].manifest)
    chosen = [
        r
        for c in range(len(classes))
        for r in [m for m in manifest if m["class"] == c and m["file"].endswith("-v0.png")][:k]
    ]
    out.append(f"<tr><td>source (real)</td><td>{strip([args.real / r['source'] for r in chosen])}</td></tr>")
    for s in strengths:
        files = [sources[s].cls / r["file"] for r in chosen]
        out.append(f"<tr><td>strength {s}</td><td>{strip(files)}</td></tr>")
    canvases = Real(args.real).det.canvases("train")[:6]
    det_rows = [("canvas (real), boxes", canvases)]
    for s in strengths:
        if sources[s].det.images().is_dir():
            det_rows.append(
                (f"strength {s}, kept boxes", [sources[s].det.images() / variant_name(f, 0) for f in canvases])
            )
    for label, files in det_rows:
        boxes = [[b for _, b in read_yolo_boxes(label_of(f))] for f in files]
        out.append(f"<tr><td>{label}</td><td>{strip(files, boxes, tile=128)}</td></tr>")
    out.append(
        "</table><h3>X-Paste: synthetic (and real pool) digits cut out and pasted onto real canvases</h3>"
        "<table class='gallery'>"
    )
    for variant in xpaste_variants(params):
        files = sorted(Dataset.of(args.datasets, variant).det.images("train").glob("xpaste_*.png"))[:6]
        boxes = [[b for _, b in read_yolo_boxes(label_of(f))] for f in files]
        if files:
            out.append(f"<tr><td>{variant}</td><td>{strip(files, boxes, tile=128)}</td></tr>")
    return "".join(out) + "</table>"


def markdown(summary: dict, study_rows: list[dict]) -> str:
    """The results and study tables as Markdown, for the README to quote."""
    lines = []
    for regime in summary.get("regimes", {None: None}):
        if regime:
            lines += ["", f"**{regime_shots(regime)} real images per class**", ""]
        lines += [
            "| variant | " + " | ".join(f"{label} | Δ vs baseline" for label in METRIC_LABELS.values()) + " |",
            "|---" * (1 + 2 * len(METRIC_LABELS)) + "|",
        ]
        for name, v in regime_rows(summary, regime).items():
            lines.append(
                f"| {name} | "
                + " | ".join(
                    f"{mean_text(v.get(m))} | {diff_text(v.get(m, {}).get('diff_vs_baseline'))}" for m in METRIC_LABELS
                )
                + " |"
            )
    lines = [f"- {line}" for line in verdict(summary)] + [""] + lines
    lines += [
        "",
        "| source | conditional accuracy | KID ± spread | Fréchet distance | CAS | s / image | box survival "
        "| detector recall on real |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for source, q in summary["quality"].items():
        get = lambda k, f, q=q: f.format(q[k]) if k in q else "—"
        lines.append(
            f"| {source} | {get('conditional_accuracy', '{:.3f}')} | {kid_text(q)} | "
            f"{get('frechet_distance', '{:.2f}')} | "
            f"{get('cas', '{:.3f}')} | {get('seconds_per_image', '{:.4f}')} | {get('box_survival', '{:.3f}')} | "
            f"{get('box_recall_real', '{:.3f}')} |"
        )
    lines += [
        "",
        "| scheduler | steps | conditional accuracy | KID ± spread | Fréchet distance | s / image |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['scheduler']} | {r['steps']} | {float(r['conditional_accuracy']):.3f} | "
        f"{kid_text(r)} | "
        f"{float(r['frechet_distance']):.2f} | {seconds_text(r)} |"
        for r in study_rows
    ]
    return "\n".join(lines) + "\n"


def provenance(params_path: Path, params: Params, machines_of: Sequence[dict | None] = ()) -> str:
    digest = hashlib.sha256(params_path.read_bytes()).hexdigest()[:16]
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
        ).stdout.strip()
        rev += " (uncommitted changes)" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        rev = "not a git checkout"
    timings = read_timings()
    rows = "".join(
        f"<tr><td>{html.escape(stage)}</td><td>{t['seconds']:.1f}</td><td>{html.escape(t['finished'])}</td></tr>"
        for stage, t in sorted(timings.items())
    )
    g = params.generate
    machines = "; ".join(
        f"{m['cpu']}, torch CPU capability {m['capability']}, {m['threads']} threads, torch {m['torch']}"
        for m in machines_of or []
        if m
    )
    return (
        f"<table id='provenance'><tr><td>model</td><td>{html.escape(g.model)} ({g.dtype}, {g.device})</td></tr>"
        f"<tr><td>classifiers trained on</td><td>{html.escape(machines or 'not recorded')} (another CPU or "
        "kernel path rounds differently: the bytes differ, the conclusions must not)</td></tr>"
        f"<tr><td>params file sha256</td><td><code>{digest}</code></td></tr>"
        f"<tr><td>git revision</td><td><code>{html.escape(rev)}</code></td></tr>"
        f"<tr><td>sampling</td><td>{g.steps} steps, guidance {g.guidance:g}, batch {g.batch_size}</td></tr></table>"
        "<h3>Per-stage timings (last run of each stage on this machine)</h3>"
        + (
            f"<table id='timings'><thead><tr><th>stage</th><th>seconds</th><th>finished</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
            if rows
            else "<p class='muted'>No timings recorded yet.</p>"
        )
    )
