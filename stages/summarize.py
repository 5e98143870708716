"""Stage ``summarize``: the answer — each variant against the baseline, with statistics.

Inputs:  ``--eval`` (metrics/eval/<variant>.json), ``--quality`` (metrics/quality/<kind>/<name>.json),
         ``--study`` (metrics/study/<scheduler>.json), ``--survival`` (metrics/survival/<strength>.json)
Outputs: ``--out`` (metrics/summary.json, DVC metrics): ``regimes.<k>shot.<variant>.<metric>`` —
         per regime (``trials.shots``; mAP only at the largest, for ``trials.yolo_variants``) the
         mean over seeds with its 95% confidence half-width (Student t); ``diff_vs_baseline``, the
         paired difference to ``baseline`` (same seed, same real images) with its half-width, its
         two-sided paired t-test ``p_value``, ``p_holm`` (Holm's step-down adjustment over the
         verdict's family — accuracy and mAP50-95 in every regime, but for the smaller real-pool
         variants, the exchange-rate curve's points, a family of their own; each other metric is a
         family of its own) and ``beats_baseline`` (mean > 0 and p_holm < 0.05); ``diff_vs_real``, the same
         against the real reference (the largest real-pool variant). ``exchange.<k>shot``: the curve
         of accuracy against extra real images per class and, per synthetic variant, the real images
         it is worth with a bootstrap interval. ``variants`` (source, ratio, per_class), ``families``
         (Holm family sizes), the detector budgets (optimiser steps per run, and whether they are all
         equal), ``machines`` (the CPU, capability and threads the classifiers were trained on), the
         quality scores of each synthetic source. ``--study-plot`` (plots/study.csv): one
         row per scheduler and step count, drawn by the ``study`` template.
Params:  seed, variants, real_pool.per_class, trials.*, txt2img.schedulers,
         img2img.strengths, img2img.det
A half-width or p-value is null when there is only one seed: one run gives no interval.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from synthaug.cli import parse_args, run
from synthaug.files import read_json, write_csv, write_json
from synthaug.params import load_params
from synthaug.stats import ALPHA, adjust, compare, curve_points, exchange_rates, headline, reference_of

log = logging.getLogger("summarize")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv, "eval", "quality", "study", "survival", "out", "study-plot")
    params = load_params(args.params)
    evals = {v: read_json(args.eval / f"{v}.json") for v in params.variants}
    regimes = compare(params, evals)
    families = adjust(regimes, curve_points(params))
    exchange = exchange_rates(params, evals)
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
        if isinstance(point, dict)  # a step count's scores (content_md5 names the images)
    ]
    machines = []  # the machines the classifiers were trained on (one, unless runs were mixed)
    for e in evals.values():
        if e.get("machine") not in machines:
            machines.append(e.get("machine"))
    variants = {v: {"source": c.source, "ratio": c.ratio, "per_class": c.per_class} for v, c in params.variants.items()}
    write_json(
        args.out,
        {
            "regimes": regimes,
            "headline": headline(params),
            "exchange": exchange,
            "variants": variants,
            "reference": reference_of(params),
            "alpha": ALPHA,
            "families": families,
            "budget": budget,
            "machines": machines,
            "quality": quality,
        },
    )
    write_csv(args.study_plot, study_rows)
    for r, rows in regimes.items():
        for v, row in rows.items():
            if "diff_vs_baseline" in row["accuracy"]:
                d = row["accuracy"]["diff_vs_baseline"]
                log.info(
                    "%s %s: accuracy %+.4f ± %s vs baseline (p %s, Holm %s)",
                    r,
                    v,
                    d["mean"],
                    d["ci95"],
                    d["p_value"],
                    d["p_holm"],
                )


if __name__ == "__main__":
    run(main)
