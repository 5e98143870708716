"""How big the detection test split must be: the trained detectors' paired comparisons on its first N canvases.

    python bench/det_test_size.py [--repo .] [--sizes 128 256 640]

Evaluates every detector of a finished workspace (``trials.yolo_variants`` × ``trials.yolo_seeds``,
``models/yolo``) with Ultralytics' validator on the first N canvases of ``data/real/det`` test, for
each N, and prints per variant its paired difference in mAP50-95 to the baseline over seeds: mean,
sd, the standardised effect d = mean / sd and the paired t-test's p. mAP on few canvases carries its
own noise, which adds to the seeds' spread: where d grows with N, the test split was too small for
the comparison. The canvases are made in order from one seed each (``prepare``), so the first N of a
larger split are the split of N.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from synthaug.dag import Dag
from synthaug.detector import load_detector, validate
from synthaug.layout import Real, Run
from synthaug.params import BASELINE, load_params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", type=Path, default=Path("."))
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 640])
    args = ap.parse_args()
    repo = args.repo.resolve()
    params = load_params(repo / "params.yaml")
    dag = Dag(repo)
    real = Real(repo / dag.arg("prepare", "--out"))
    detectors = repo / dag.arg("evaluate@baseline", "--yolo")
    images = sorted(real.det.images("test").glob("*.png"))
    sizes = [n for n in args.sizes if n <= len(images)]
    if not sizes:
        raise SystemExit(f"{real.det.images('test')}: {len(images)} canvases, fewer than any of --sizes")
    names = yaml.safe_load(real.det.yaml.read_text())["names"]
    tmp = Path(tempfile.mkdtemp(prefix="synthaug-det-size-"))
    try:
        specs = {}
        for n in sizes:  # Ultralytics reads a split from a list of image paths; labels sit beside as usual
            listing = tmp / f"test{n}.txt"
            listing.write_text("".join(f"{p}\n" for p in images[:n]))
            specs[n] = tmp / f"data{n}.yaml"
            spec = {"train": str(listing), "val": str(listing), "test": str(listing), "names": names}  # all required
            specs[n].write_text(yaml.safe_dump({"path": str(real.det.root)} | spec))
        score: dict[tuple[str, int, int], float] = {}
        for variant in params.trials.yolo_variants:
            for seed in params.trials.yolo_seeds:
                yolo = load_detector(Run.of(detectors, seed, variant).root, params.train_yolo.model, names)
                for n in sizes:
                    score[variant, seed, n] = float(validate(yolo, specs[n], "test", params.train_yolo.imgsz).box.map)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    seeds = params.trials.yolo_seeds
    print(f"{'canvases':>8} {'variant':<12} {'mean Δ':>8} {'sd Δ':>7} {'d':>6} {'p':>8}")
    for n in sizes:
        base = np.array([score[BASELINE, s, n] for s in seeds])
        for variant in (v for v in params.trials.yolo_variants if v != BASELINE):
            diffs = np.array([score[variant, s, n] for s in seeds]) - base
            sd = diffs.std(ddof=1) if len(diffs) > 1 else float("nan")
            p = stats.ttest_1samp(diffs, 0.0).pvalue if len(diffs) > 1 else float("nan")
            print(f"{n:>8} {variant:<12} {diffs.mean():>+8.4f} {sd:>7.4f} {diffs.mean() / sd:>6.2f} {p:>8.4f}")


if __name__ == "__main__":
    main()
