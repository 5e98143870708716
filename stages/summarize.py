"""Stage ``summarize``: the answer — each variant against the baseline, with statistics.

Inputs:  ``--eval`` (metrics/eval/<variant>.json), ``--quality`` (metrics/quality/<kind>/<name>.json),
         ``--study`` (metrics/study/<scheduler>.json), ``--survival`` (metrics/survival/<strength>.json)
Outputs: ``--out`` (metrics/summary.json, DVC metrics): per variant and metric (accuracy, macro_f1,
         mAP50, mAP50-95), the mean over seeds with its 95% confidence half-width (Student t) and the
         paired difference to ``baseline`` (same seed) with its half-width; the quality scores of
         each synthetic source. ``--study-plot`` (plots/study.csv): one row per scheduler and step
         count, drawn by the ``study`` template (one line per scheduler).
Params:  variants, train_resnet.seeds, train_yolo.seeds, txt2img.schedulers, img2img.strengths, img2img.det
A half-width is null when there is only one seed: one run gives no interval.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import stats

from synthaug.cli import run
from synthaug.errors import DataError
from synthaug.params import load_params

log = logging.getLogger("summarize")
METRICS = {"accuracy": "resnet", "macro_f1": "resnet", "mAP50": "yolo", "mAP50-95": "yolo"}


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> dict:
    """Mean and the half-width of its two-sided t interval (null for fewer than two values)."""
    v = np.asarray(values, dtype=np.float64)
    half = None
    if len(v) >= 2:
        half = float(stats.t.ppf(0.5 + confidence / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
        half = round(half, 6)
    return {"mean": round(float(v.mean()), 6), "ci95": half, "n": len(v)}


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc}); run `dvc repro`") from None


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, required=True)
    ap.add_argument("--eval", type=Path, required=True)
    ap.add_argument("--quality", type=Path, required=True)
    ap.add_argument("--study", type=Path, required=True)
    ap.add_argument("--survival", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--study-plot", type=Path, required=True)
    args = ap.parse_args(argv)
    params = load_params(args.params)
    seeds = {"resnet": params.train_resnet.seeds, "yolo": params.train_yolo.seeds}
    evals = {v: read_json(args.eval / f"{v}.json") for v in params.variants}

    def per_seed(variant: str, metric: str) -> list[float]:
        model = METRICS[metric]
        return [evals[variant][model][f"seed{s}"][metric] for s in seeds[model]]

    variants = {}
    for v in params.variants:
        variants[v] = {"source": params.variants[v].source, "ratio": params.variants[v].ratio}
        for metric in METRICS:
            row = mean_ci(per_seed(v, metric))
            if v != "baseline":
                diffs = np.subtract(per_seed(v, metric), per_seed("baseline", metric))
                row["diff_vs_baseline"] = mean_ci(diffs)
            variants[v][metric] = row
    sources = [("txt2img", s) for s in params.txt2img.schedulers] + [("img2img", f"{s:g}") for s in params.img2img.strengths]
    quality = {f"{kind}/{name}": read_json(args.quality / kind / f"{name}.json") for kind, name in sources}
    for kind, name in sources:
        if kind == "img2img" and params.img2img.det:
            quality[f"img2img/{name}"] |= read_json(args.survival / f"{name}.json")
    study_rows = []
    for scheduler in params.txt2img.schedulers:
        for point in read_json(args.study / f"{scheduler}.json").values():
            study_rows.append({"scheduler": scheduler, **point})
    summary = {"variants": variants, "quality": quality}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    args.study_plot.parent.mkdir(parents=True, exist_ok=True)
    with open(args.study_plot, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(study_rows[0]))
        writer.writeheader()
        writer.writerows(study_rows)
    for v, row in variants.items():
        if v != "baseline":
            d = row["accuracy"]["diff_vs_baseline"]
            log.info("%s: accuracy %+.4f ± %s vs baseline", v, d["mean"], d["ci95"])


if __name__ == "__main__":
    run(main)
