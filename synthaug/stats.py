"""The statistics of the answer (stage ``summarize``): per regime, variant and metric the mean over seeds
with its 95% t interval, the paired difference to the baseline (same seed, so the same real images)
with its paired t-test, Holm's step-down adjustment over the family of comparisons the verdict uses
(the headline metrics, every regime), the same difference against the real reference variant, and
the exchange rate: the extra real images a synthetic variant is worth, read off the curve of real-pool
sizes with a bootstrap interval over seeds."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats

from synthaug import layout
from synthaug.metrics import METRIC_BY_NAME, METRICS, Metric
from synthaug.params import BASELINE, Params, resnet_seeds

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


def per_seed(
    params: Params, evals: dict[str, dict], variant: str, metric: Metric, regime: str
) -> dict[int, float] | None:
    """A variant's metric per seed, in seed order, or None where it was not measured: a detector
    trains only for ``trials.yolo_variants``, at the full train set. Two variants pair on the seeds
    both trained (``paired_on``): a variant may train more seeds in a regime than another."""
    if metric.model == "yolo":
        if variant not in params.trials.yolo_variants or regime != headline(params):
            return None
        return {s: evals[variant]["yolo"][f"seed{s}"][metric.name] for s in params.trials.yolo_seeds}
    if regime not in evals[variant]["resnet"]:  # not one of the variant's regimes
        return None
    shots = next(k for k in params.trials.shots if layout.regime(k) == regime)
    seeds = resnet_seeds(params, variant, shots)
    return {s: evals[variant]["resnet"][regime][f"seed{s}"][metric.name] for s in seeds}


def paired_on(a: dict[int, float], b: dict[int, float]) -> tuple[list[float], list[float]]:
    """``a`` and ``b`` on the seeds both have, in ``a``'s order."""
    common = [s for s in a if s in b]
    return [a[s] for s in common], [b[s] for s in common]


def headline(params: Params) -> str:
    """The largest regime: the whole real train set, which the detectors train on too."""
    return layout.regime(params.trials.shots[-1])


def reference_of(params: Params) -> str | None:
    """The real reference variant: the real-pool variant with the most images (all the pool holds)."""
    pools = {v: real_per_class(params, v) for v, cfg in params.variants.items() if cfg.source == "real/pool"}
    return max(pools, key=pools.get) if pools else None


def curve_points(params: Params) -> list[str]:
    """The real-pool variants other than the reference: the exchange-rate curve's inner points."""
    reference = reference_of(params)
    return [v for v, cfg in params.variants.items() if cfg.source == "real/pool" and v != reference]


def real_per_class(params: Params, variant: str) -> int:
    """Extra real images per class a variant adds (0 for the baseline; only real-pool variants add any)."""
    cfg = params.variants[variant]
    if cfg.source != "real/pool":
        return 0
    return min(cfg.per_class or params.real_pool.per_class, params.real_pool.per_class)


def compare(params: Params, evals: dict[str, dict]) -> dict[str, dict[str, dict]]:
    """Per regime, variant and metric (synthaug.metrics): mean ± CI over seeds, the paired difference
    to the baseline with its p-value, and the paired difference to the real reference."""
    reference = reference_of(params)
    regimes: dict[str, dict[str, dict]] = {}
    for shots in params.trials.shots:
        r = layout.regime(shots)
        rows = regimes.setdefault(r, {})
        for v in params.variants:
            for metric in METRICS:
                values = per_seed(params, evals, v, metric, r)
                if values is None:
                    continue
                row = mean_ci(list(values.values()))
                if v != BASELINE:
                    row["diff_vs_baseline"] = paired(*paired_on(values, per_seed(params, evals, BASELINE, metric, r)))
                ref = per_seed(params, evals, reference, metric, r) if reference else None
                if ref is not None and v not in (BASELINE, reference) and params.variants[v].source != "real/pool":
                    row["diff_vs_real"] = paired(*paired_on(values, ref))
                rows.setdefault(v, {})[metric.name] = row
    return regimes


def adjust(regimes: dict[str, dict[str, dict]], curve: Sequence[str] = ()) -> dict[str, int]:
    """Holm's adjustment in place (``p_holm``, ``beats_baseline``): the headline metrics' comparisons to
    the baseline over every regime are one family — the verdict's — but for the smaller real-pool
    variants' (``curve``: points of the exchange-rate curve, not claims), which are one of their own;
    each other metric is a family of its own. Returns each family's size."""
    families: dict[str, dict[tuple[str, str, str], dict]] = {}
    for r, rows in regimes.items():
        for v, metrics in rows.items():
            for m, row in metrics.items():
                if "diff_vs_baseline" in row:
                    family = m if not METRIC_BY_NAME[m].headline else "curve" if v in curve else "verdict"
                    families.setdefault(family, {})[(r, v, m)] = row["diff_vs_baseline"]
    for compared in families.values():
        adjusted = holm({key: d["p_value"] for key, d in compared.items()})
        for key, d in compared.items():
            d["p_holm"] = adjusted[key]
            d["beats_baseline"] = adjusted[key] is not None and adjusted[key] < ALPHA and d["mean"] > 0
    return {family: len(compared) for family, compared in families.items()}


def worth_in_real(curve_x: Sequence[float], curve_y: np.ndarray, y: float) -> float:
    """The extra real images per class at which the real curve reaches accuracy ``y``: linear between
    the curve's points, on its running maximum (more real data is never taken to hurt); clipped to the
    curve's ends — 0 (worth no real image) and its last point (worth at least that many)."""
    top = np.maximum.accumulate(curve_y)
    if y <= top[0]:
        return float(curve_x[0])
    if y >= top[-1]:
        return float(curve_x[-1])
    i = int(np.searchsorted(top, y, side="left"))  # top[i - 1] < y <= top[i]
    span = top[i] - top[i - 1]
    return float(curve_x[i - 1] + (curve_x[i] - curve_x[i - 1]) * ((y - top[i - 1]) / span if span else 1.0))


def exchange_rates(params: Params, evals: dict[str, dict], boot: int = 2000) -> dict[str, dict]:
    """Per regime, the curve of accuracy against extra real images per class (the baseline at 0 and
    every real-pool variant) and, for each synthetic variant, the number of extra real images per
    class it is worth — read off that curve at its mean accuracy — with a 95% percentile bootstrap
    interval over seeds (resampled together for every variant: the runs pair by seed). Empty where
    there are fewer than two curve points."""
    pools = sorted(
        (real_per_class(params, v), v) for v, cfg in params.variants.items() if cfg.source in ("none", "real/pool")
    )
    if len(pools) < 2 or len({x for x, _ in pools}) != len(pools):
        return {}
    synthetic = [v for v, cfg in params.variants.items() if cfg.source.split("/")[0] in ("txt2img", "img2img")]
    accuracy = METRIC_BY_NAME["accuracy"]
    rng = np.random.default_rng(params.seed)
    n = len(params.trials.resnet_seeds)
    draws = rng.integers(0, n, size=(boot, n))
    out = {}
    for shots in params.trials.shots:
        r = layout.regime(shots)
        acc = {  # on the seeds every variant trains, so that one draw resamples them all together
            v: np.asarray([values[s] for s in params.trials.resnet_seeds])
            for v in evals
            if (values := per_seed(params, evals, v, accuracy, r)) is not None
        }
        points = [(x, v) for x, v in pools if v in acc]  # the real pools trained in this regime
        if len(points) < 2:
            continue
        xs = [float(x) for x, _ in points]
        curve = np.stack([acc[v] for _, v in points])  # points × seeds
        rates = {}
        for v in (v for v in synthetic if v in acc):
            point = worth_in_real(xs, curve.mean(1), float(acc[v].mean()))
            samples = [worth_in_real(xs, curve[:, d].mean(1), float(acc[v][d].mean())) for d in draws]
            lo, hi = np.percentile(samples, [2.5, 97.5])
            rates[v] = {
                "real_per_class": round(point, 3),
                "ci95": [round(float(lo), 3), round(float(hi), 3)],
                "at_curve_end": point >= xs[-1],  # worth at least the curve's last point: the curve is too short
            }
        out[r] = {
            "curve": {v: {"real_per_class": x, **mean_ci(acc[v])} for x, v in points},
            "variants": rates,
        }
    return out
