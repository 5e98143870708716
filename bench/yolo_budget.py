"""Test mAP50 / mAP50-95 of the baseline detector against wall time, for a few training budgets.

    python bench/yolo_budget.py --settings 150:scratch,40:pretrained,60:pretrained --seeds 0,1,2

Each setting is ``epochs:init[:imgsz[:model]]`` (init: scratch, or pretrained from
``--pretrained``, pretrain_yolo's output, which fits its own model yaml only); everything else is
``train_yolo`` from ``--params``. It
trains exactly as the ``train_yolo`` stage does (synthaug.detector.train_detector: every batch an
optimiser step, final EMA weights) on ``--data`` (default: the real train canvases, i.e. the
baseline) and scores the real test split with Ultralytics' validator, as ``evaluate`` does. Prints
one row per setting and seed (val mAP50 too: choose on val, test only confirms), then the mean
and the worst seed per setting. Nothing is written outside a temporary folder.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synthaug.dag import Dag
from synthaug.offline import harden

harden()

from stages.train_yolo import budget_from_params  # noqa: E402
from synthaug.detector import load_detector, train_detector, validate  # noqa: E402
from synthaug.params import load_params  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--data", type=Path, default=Dag().arg("pretrain_yolo", "--data"))
    ap.add_argument("--pretrained", type=Path, default=Dag().arg("pretrain_yolo", "--out"))
    ap.add_argument("--settings", default="150:scratch,40:pretrained,60:pretrained")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--lr0", type=float, default=None, help="override train_yolo.lr0")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    params = load_params(args.params)
    base = budget_from_params(params)
    if args.lr0:
        base = replace(base, lr0=args.lr0)
    spec = yaml.safe_load(args.data.read_text())
    n = len(list((args.data.parent / spec["train"]).glob("*.png")))
    names = spec["names"]
    rows = []
    print(
        f"{'epochs':>6} {'init':<10} {'imgsz':>5} {'seed':>4} {'steps':>6} {'train s':>8} {'val mAP50':>9} "
        f"{'mAP50':>7} {'mAP50-95':>8}",
        flush=True,
    )
    for setting in args.settings.split(","):
        epochs, init, *rest = setting.split(":")
        imgsz = int(rest[0]) if rest else base.imgsz
        budget = replace(base, epochs=int(epochs), imgsz=imgsz, model=rest[1] if len(rest) > 1 else base.model)
        weights = args.pretrained / "model.safetensors" if init == "pretrained" else None
        for seed in map(int, args.seeds.split(",")):
            with tempfile.TemporaryDirectory(prefix="yolo-bench-") as tmp:
                out = Path(tmp) / "run"
                out.mkdir()
                run = train_detector(args.data, out, budget, seed, n, n, weights)
                yolo = load_detector(out, budget.model, names)
                v = validate(yolo, args.data, "val", imgsz)
                m = validate(yolo, args.data, "test", imgsz)
            rows.append((setting, run["seconds"], float(m.box.map50), float(m.box.map), float(v.box.map50)))
            print(
                f"{epochs:>6} {init:<10} {imgsz:>5} {seed:>4} {run['optimizer_steps']:>6} {run['seconds']:>8.1f} "
                f"{v.box.map50:>9.3f} {m.box.map50:>7.3f} {m.box.map:>8.3f}",
                flush=True,
            )
    print(f"\n{'setting':<26} mean s  val mAP50  mean mAP50  worst mAP50  mean mAP50-95")
    for setting in dict.fromkeys(r[0] for r in rows):
        r = [x for x in rows if x[0] == setting]
        print(
            f"{setting:<26} {statistics.mean(x[1] for x in r):>6.1f} {statistics.mean(x[4] for x in r):>10.3f} "
            f"{statistics.mean(x[2] for x in r):>11.3f} "
            f"{min(x[2] for x in r):>12.3f} {statistics.mean(x[3] for x in r):>14.3f}"
        )


if __name__ == "__main__":
    main()
