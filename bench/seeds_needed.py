"""How many seeds each comparison needs: from pilot runs (the committed ``metrics/eval/<variant>.json``,
per regime for the classifier),
the paired difference to the baseline per seed, its observed effect size, and the smallest number of
seeds that gives a two-sided paired t-test 80 % power at that effect — at alpha 0.05, and at the
stricter alpha Holm's first step uses for the whole family (0.05 / comparisons).

    python bench/seeds_needed.py [--eval metrics/eval] [--power 0.8] [--alpha 0.05]
    python bench/seeds_needed.py --agreement 4000 [--with-seeds 6]

``--agreement R`` simulates R pairs of independent readings of the whole verdict — each comparison's
paired differences drawn normal at its observed effect, with the seeds it has (``--with-seeds``: as
many for every comparison) — decides each with the paired t-test and Holm over the family, as
``summarize`` does, and prints how often a comparison's decision differs between the two readings and
how often every decision agrees: what another machine's rerun (a fresh draw of every run) is likely
to change.

An effect measured on few seeds is itself noisy (the sizes it prints are estimates, not guarantees):
read them as "this comparison is decidable with about n seeds" versus "not at any budget we can pay".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from synthaug.metrics import METRICS
from synthaug.params import BASELINE, load_params
from synthaug.stats import curve_points, holm


def power(n: int, effect: float, alpha: float) -> float:
    """Power of a two-sided paired t-test with ``n`` pairs at standardised effect ``effect``."""
    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = effect * np.sqrt(n)
    upper = stats.nct.sf(crit, df, nc)
    if not np.isfinite(upper):  # scipy's noncentral t returns nan for some large noncentralities
        upper = 1 - stats.nct.cdf(crit, df, nc)
    if not np.isfinite(upper):
        upper = stats.norm.sf(crit - nc)  # far in the tail the noncentral t is close to a shifted normal
    lower = stats.nct.cdf(-crit, df, nc)
    return float(upper + (lower if np.isfinite(lower) else 0.0))


def seeds_needed(effect: float, alpha: float, target: float, most: int = 200) -> int | None:
    """The smallest n (≥ 2) reaching ``target`` power, or None if not within ``most``."""
    if effect == 0:
        return None
    return next((n for n in range(2, most + 1) if power(n, abs(effect), alpha) >= target), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--eval", type=Path, default=Path("metrics/eval"))
    ap.add_argument("--power", type=float, default=0.8)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--agreement", type=int, metavar="R", help="simulate R pairs of readings of the verdict")
    ap.add_argument("--with-seeds", type=int, metavar="N", help="--agreement with N seeds for every comparison")
    args = ap.parse_args()
    curve = set(curve_points(load_params(args.params)))  # the exchange curve's points: not the verdict's family
    evals = {p.stem: json.loads(p.read_text()) for p in sorted(args.eval.glob("*.json"))}
    rows = []
    for m in (m for m in METRICS if m.headline):  # the verdict's family
        for variant, e in evals.items():
            # per regime for the classifier (<k>shot → seeds), one set of seeds for the detector
            cells = e[m.model].items() if m.model == "resnet" else [("", e[m.model])]
            for regime, runs in cells:
                base = evals[BASELINE][m.model].get(regime, {}) if regime else evals[BASELINE][m.model]
                seeds = sorted(k for k in runs if k.startswith("seed") and k in base)
                if variant == BASELINE or variant in curve or len(seeds) < 2:
                    continue
                diffs = np.array([runs[s][m.name] - base[s][m.name] for s in seeds])
                sd = diffs.std(ddof=1)
                effect = diffs.mean() / sd if sd > 0 else float("inf")
                rows.append((f"{m.label} {regime}".strip(), variant, len(seeds), diffs.mean(), sd, effect))
    family = max(1, len(rows))
    print(f"{'comparison':<28} {'variant':<13} {'seeds':>5} {'mean Δ':>8} {'sd Δ':>7} {'d':>6} "
          f"{'n at α=' + format(args.alpha, 'g'):>10} {'n at α/' + str(family):>9}")  # fmt: skip
    for label, variant, n, mean, sd, effect in rows:
        plain, strict = (
            seeds_needed(effect, a, args.power) if np.isfinite(effect) else 2 for a in (args.alpha, args.alpha / family)
        )
        shown = [str(x) if x is not None else ">200" for x in (plain, strict)]
        print(f"{label:<28} {variant:<13} {n:>5} {mean:>+8.4f} {sd:>7.4f} {effect:>6.2f} {shown[0]:>10} {shown[1]:>9}")
    if args.agreement:
        cells = [(f"{label} {variant}", args.with_seeds or n, effect) for label, variant, n, _, _, effect in rows]
        agreement(cells, args.agreement, args.alpha, np.random.default_rng(0))


def decisions(cells: list[tuple[str, int, float]], alpha: float, rng: np.random.Generator) -> np.ndarray:
    """One reading of the verdict: each comparison's seeds drawn at its effect, decided by the paired
    t-test and Holm's step-down over the family (beats or falls below: decided; else undecided)."""
    p = {}
    for label, n, effect in cells:
        x = rng.normal(effect if np.isfinite(effect) else 50.0, 1.0, n)
        p[label] = float(stats.ttest_1samp(x, 0.0).pvalue)
    adjusted = holm(p)
    return np.array([adjusted[label] < alpha for label, _, _ in cells])


def agreement(cells: list[tuple[str, int, float]], reps: int, alpha: float, rng: np.random.Generator) -> None:
    flips, same = np.zeros(len(cells)), 0
    for _ in range(reps):
        a, b = decisions(cells, alpha, rng), decisions(cells, alpha, rng)
        flips += a != b
        same += bool((a == b).all())
    print(f"\ntwo independent readings, {reps} simulated pairs: how often a decision differs")
    for (label, n, _), f in zip(cells, flips / reps):
        print(f"{label:<42} {n:>3} seeds {f:>6.1%}")
    print(f"every decision the same: {same / reps:.1%}")


if __name__ == "__main__":
    main()
