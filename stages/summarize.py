"""Stage ``summarize``: the answer — each variant against the baseline, with statistics.

Inputs:  ``--eval`` (metrics/eval/<variant>.json), ``--quality`` (metrics/quality/<kind>/<name>.json),
         ``--study`` (metrics/study/<scheduler>.json), ``--survival`` (metrics/survival/<strength>.json)
Outputs: ``--out`` (metrics/summary.json, DVC metrics): per variant and metric (accuracy, macro_f1,
         mAP50, mAP50-95; mAP only for the variants in ``trials.yolo_variants``), the mean over seeds
         with its 95% confidence half-width (Student t); ``diff_vs_baseline`` — the paired difference
         to ``baseline`` (same seed) with its half-width, its two-sided paired t-test ``p_value`` and
         ``p_holm``, Holm's step-down adjustment over every variant compared on that metric, and
         ``beats_baseline`` (mean > 0 and p_holm < 0.05); ``diff_vs_real`` — the same against the
         real reference variant (source ``real/pool``), with ``worth_vs_real``, the synthetic gain
         over the real one's; the detector budgets (optimiser steps per run, and whether they are
         all equal); the quality scores of each synthetic source. ``--study-plot``
         (plots/study.csv): one row per scheduler and step count, drawn by the ``study`` template.
Params:  variants, trials.*, txt2img.schedulers,
         img2img.strengths, img2img.det
A half-width or p-value is null when there is only one seed: one run gives no interval.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from synthaug.cli import parse_args, run
from synthaug.files import read_json, write_csv, write_json
from synthaug.params import BASELINE, load_params
from synthaug.stats import ALPHA, adjust, compare

log = logging.getLogger("summarize")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv, "eval", "quality", "study", "survival", "out", "study-plot")
    params = load_params(args.params)
    evals = {v: read_json(args.eval / f"{v}.json") for v in params.variants}
    reference = next((v for v, cfg in params.variants.items() if cfg.source == "real/pool"), None)
    variants = compare(params, evals, reference)
    adjust(variants, reference)
    steps = {
        v: [evals[v]["yolo"][f"seed{s}"]["optimizer_steps"] for s in params.trials.yolo_seeds]
        for v in params.trials.yolo_variants
    }
    budget = {"yolo_optimizer_steps": steps, "yolo_equal": len({n for runs in steps.values() for n in runs}) == 1}
    if not budget["yolo_equal"]:
        log.warning("detectors took different numbers of optimiser steps %s: their comparison is not fair", steps)
    sources = [("txt2img", s) for s in params.txt2img.schedulers] + [
        ("img2img", f"{s:g}") for s in params.img2img.strengths
    ]
    quality = {f"{kind}/{name}": read_json(args.quality / kind / f"{name}.json") for kind, name in sources}
    for kind, name in sources:
        if kind == "img2img" and params.img2img.det:
            quality[f"img2img/{name}"] |= read_json(args.survival / f"{name}.json")
    study_rows = [
        {"scheduler": scheduler, **point}
        for scheduler in params.txt2img.schedulers
        for point in read_json(args.study / f"{scheduler}.json").values()
    ]
    write_json(
        args.out, {"variants": variants, "reference": reference, "alpha": ALPHA, "budget": budget, "quality": quality}
    )
    write_csv(args.study_plot, study_rows)
    for v, row in variants.items():
        if v != BASELINE:
            d = row["accuracy"]["diff_vs_baseline"]
            log.info(
                "%s: accuracy %+.4f ± %s vs baseline (p %s, Holm %s)",
                v,
                d["mean"],
                d["ci95"],
                d["p_value"],
                d["p_holm"],
            )


if __name__ == "__main__":
    run(main)
