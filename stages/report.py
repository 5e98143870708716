"""Stage ``report``: ``report/index.html``, one self-contained page with the study's results.

Inputs:  ``--summary`` (metrics/summary.json), ``--study-plot`` (plots/study.csv), ``--study``
         (data/study: scheduler × steps images), ``--real`` (data/real), ``--synthetic``
         (data/synthetic), ``--datasets`` (data/datasets: X-Paste canvases), ``--curves``
         (plots/train_resnet: training histories), ``--params``; ``--timings`` (timings/: seconds per image,
         shown, not depended on — wall-clock numbers would rerun the report after every rerun);
         ``--study-metrics`` (metrics/study), ``--quality`` (metrics/quality), ``--assemble``
         (metrics/assemble): their ``content_md5`` name the images the galleries show, so the report
         depends on them instead of on the thousands of images in those folders
Outputs: ``--markdown`` (report/results.md), ``--study-png`` (report/study.png), ``--shots-png``
         (report/shots.png: accuracy against real shots per class) and ``--exchange-png``
         (report/exchange.png: what each synthetic source is worth in real images): the tables and
         figures, for the README;
         ``--out`` (report/index.html): galleries (same prompts and seeds per scheduler and step
         count; img2img strengths next to their source, boxes drawn; X-Paste canvases), the
         headline figures, the verdict per regime, the results tables per regime (gain vs baseline
         with 95% CI), synthetic-data quality, where each real
         split came from (data/real/splits.json), the scheduler study (table and plots),
         provenance (model, params hash, git revision, per-stage timings).
Params:  report.*, study.steps, generate, variants, txt2img.schedulers, img2img.strengths
Everything is inlined (images as data: URIs, CSS, no script), so the file works offline, alone.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence

from synthaug import checksums
from synthaug.cli import parse_args, run
from synthaug.errors import DataError
from synthaug.files import read_json, write_text
from synthaug.layout import Real, Timings
from synthaug.params import load_params
from synthaug.reporting import (
    CSS,
    curves_section,
    data_section,
    galleries,
    headline_section,
    markdown,
    provenance,
    quality_table,
    results_table,
    study_section,
    with_seconds,
)

log = logging.getLogger("report")


def main(argv: Sequence[str] | None = None) -> None:
    names = (
        "summary",
        "study-plot",
        "study",
        "study-metrics",
        "quality",
        "assemble",
        "real",
        "synthetic",
        "datasets",
        "curves",
        "timings",
        "out",
        "markdown",
        "study-png",
        "shots-png",
        "exchange-png",
    )
    args = parse_args(__doc__, argv, *names)
    params = load_params(args.params)
    if not args.summary.is_file():
        raise DataError(f"{args.summary}: missing; run `dvc repro summarize`")
    summary = read_json(args.summary)
    checksums.verify(*Real(args.real).folders("train"))
    classes = Real(args.real).classes()
    with open(args.study_plot) as fh:
        study_rows = list(csv.DictReader(fh))
    with_seconds(summary, study_rows, Timings(args.timings))
    for path in (args.out, args.markdown, args.study_png, args.shots_png, args.exchange_png):
        path.parent.mkdir(parents=True, exist_ok=True)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>synthaug report</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>
<body>
<h1>synthaug: does diffusion-generated data help?</h1>
<p class="muted">ResNet classifier and YOLO detector trained on real low-data sets with and without synthetic
images, the same budget for every variant (the detectors: the same optimiser steps), evaluated on the same real
test split — which no other stage reads: quality, CAS and the study score against val. The builtin generator
learned from the labelled pool of real digits; the <code>real/pool</code> variant shows what the same number of
those real images gives.</p>
<h2 id="results-heading">Results</h2>{headline_section(summary, args.shots_png, args.exchange_png)}
{results_table(summary)}
<h3>ResNet training curves</h3>{curves_section(args.curves, params)}
<h2>Synthetic-data quality</h2>{quality_table(summary)}
<h2>Data</h2>{data_section(args.real)}
<h2>Scheduler study</h2>{study_section(study_rows, args.study_png)}
<h2 id="galleries">Galleries</h2>{galleries(args, params, classes)}
<h2>Provenance</h2>{provenance(args.params, params, summary.get("machines"))}
</body></html>
"""
    write_text(args.out, page)
    write_text(args.markdown, markdown(summary, study_rows))
    log.info("wrote %s (%.1f MB)", args.out, args.out.stat().st_size / 1e6)


if __name__ == "__main__":
    run(main)
