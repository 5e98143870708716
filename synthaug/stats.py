"""The statistics of the answer (stage ``summarize``): per variant and metric the mean over seeds with
its 95% t interval, the paired difference to the baseline (same seed) with its paired t-test, Holm's
step-down adjustment over every variant compared on a metric, and the same difference against the real
reference variant with the synthetic gain as a share of the real one's."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats

from synthaug.metrics import METRICS
from synthaug.params import BASELINE, Params

ALPHA = 0.05  # family-wise error rate of the Holm-adjusted decisions


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> dict:
    """Mean and the half-width of its two-sided t interval (null for fewer than two values)."""
    v = np.asarray(values, dtype=np.float64)
    half = None
    if len(v) >= 2:
        half = float(stats.t.ppf(0.5 + confidence / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
        half = round(half, 6)
    return {"mean": round(float(v.mean()), 6), "ci95": half, "n": len(v)}


def paired(a: Sequence[float], b: Sequence[float]) -> dict:
    """Mean and interval of ``a - b`` (paired by seed) and the two-sided paired t-test p-value."""
    diffs = np.subtract(a, b)
    row = mean_ci(diffs)
    p = None
    if len(diffs) >= 2:
        with warnings.catch_warnings():  # near-constant differences: scipy warns, the p-value stands
            warnings.simplefilter("ignore", RuntimeWarning)
            p = 1.0 if not diffs.any() else float(stats.ttest_1samp(diffs, 0.0).pvalue)
        p = round(p, 6) if np.isfinite(p) else (0.0 if diffs.mean() else 1.0)  # constant non-zero diffs
    return row | {"p_value": p}


def holm(p_values: dict[str, float | None]) -> dict[str, float | None]:
    """Holm's step-down adjusted p-values (controls the family-wise error rate; null stays null)."""
    known = sorted(((p, k) for k, p in p_values.items() if p is not None))
    out: dict[str, float | None] = dict.fromkeys(p_values)
    running = 0.0
    for i, (p, k) in enumerate(known):
        running = max(running, min(1.0, (len(known) - i) * p))
        out[k] = round(running, 6)
    return out


def compare(params: Params, evals: dict[str, dict], reference: str | None) -> dict[str, dict]:
    """Per variant and metric (synthaug.metrics): mean ± CI over seeds, the paired difference to the
    baseline with its p-value, and to the real reference."""
    seeds = {"resnet": params.trials.resnet_seeds, "yolo": params.trials.yolo_seeds}
    model_of = {m.name: m.model for m in METRICS}

    def per_seed(variant: str, metric: str) -> list[float] | None:
        model = model_of[metric]
        if model == "yolo" and variant not in params.trials.yolo_variants:
            return None
        return [evals[variant][model][f"seed{s}"][metric] for s in seeds[model]]

    variants = {}
    for v, cfg in params.variants.items():
        variants[v] = {"source": cfg.source, "ratio": cfg.ratio}
        for metric in model_of:
            values = per_seed(v, metric)
            if values is None:
                continue
            row = mean_ci(values)
            if v != BASELINE:
                row["diff_vs_baseline"] = paired(values, per_seed(BASELINE, metric))
            if reference and v not in (BASELINE, reference) and per_seed(reference, metric) is not None:
                row["diff_vs_real"] = paired(values, per_seed(reference, metric))
            variants[v][metric] = row
    return variants


def adjust(variants: dict[str, dict], reference: str | None) -> None:
    """Holm's adjustment over the variants compared on each metric (``p_holm``, ``beats_baseline``),
    and each gain as a share of the real reference's (``worth_vs_real``), in place."""
    for metric in (m.name for m in METRICS):
        compared = {
            v: row[metric]["diff_vs_baseline"]
            for v, row in variants.items()
            if metric in row and "diff_vs_baseline" in row[metric]
        }
        adjusted = holm({v: d["p_value"] for v, d in compared.items()})
        for v, d in compared.items():
            d["p_holm"] = adjusted[v]
            d["beats_baseline"] = adjusted[v] is not None and adjusted[v] < ALPHA and d["mean"] > 0
        real_gain = compared.get(reference, {}).get("mean")
        for row in variants.values():
            if "diff_vs_real" in row.get(metric, {}):
                gain = row[metric]["diff_vs_baseline"]["mean"]
                row[metric]["worth_vs_real"] = round(gain / real_gain, 4) if real_gain and real_gain > 0 else None
