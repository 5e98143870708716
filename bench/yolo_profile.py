"""Where a train_yolo step's time goes: data (Ultralytics' loader — reading, mosaic, letterbox,
collate — in the main process, ``workers: 0`` on the CPU) against the step itself (preprocess,
forward, loss, backward, optimiser, EMA), next to the step's FLOPs and a matmul's GFLOP/s.

    python bench/yolo_profile.py [--data data/datasets/baseline/det/data.yaml] [--epochs 3]

Runs the stage's own ``synthaug.detector.train_detector`` with train_yolo's budget (params.yaml)
for ``--epochs`` epochs, timing each batch with Ultralytics callbacks. Needs ``dvc repro
assemble@baseline`` first.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from synthaug.dag import Dag
from synthaug.offline import harden

harden()
import torch  # noqa: E402

from bench.train_flops import matmul_gflops  # noqa: E402
from stages.train_yolo import budget_from_params  # noqa: E402
from synthaug.detector import train_detector, ultralytics_offline  # noqa: E402
from synthaug.params import load_params  # noqa: E402


def tensors(out: object) -> list[torch.Tensor]:
    """Every tensor in a model's output (a tensor, or lists and dicts of them, by Ultralytics' version)."""
    if isinstance(out, torch.Tensor):
        return [out]
    values = out.values() if isinstance(out, dict) else out if isinstance(out, list | tuple) else []
    return [t for v in values for t in tensors(v)]


def step_flops(model_yaml: str, nc: int, batch: int, imgsz: int) -> int:
    """Forward + backward FLOPs of one batch through the detector (the loss's are negligible)."""
    from torch.utils.flop_counter import FlopCounterMode
    from ultralytics.nn.tasks import DetectionModel

    net = DetectionModel(model_yaml, nc=nc, verbose=False).train()
    with FlopCounterMode(display=False) as counter:
        out = net(torch.rand(batch, 3, imgsz, imgsz))
        sum(t.sum() for t in tensors(out)).backward()
    return counter.get_total_flops()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--data", type=Path, default=Dag().arg("assemble@baseline", "--out") / "det" / "data.yaml")
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    ultralytics_offline()
    from ultralytics.utils.callbacks import base

    params = load_params(args.params)
    budget = replace(budget_from_params(params), epochs=args.epochs, close_mosaic=1, warmup_epochs=0)
    n = len(list((args.data.parent / "images" / "train").glob("*.png")))
    marks: dict[str, list[float]] = {"start": [], "end": []}
    hooks = {
        "on_train_batch_start": lambda _t: marks["start"].append(time.perf_counter()),
        "on_train_batch_end": lambda _t: marks["end"].append(time.perf_counter()),
    }
    for event, hook in hooks.items():
        base.default_callbacks[event].append(hook)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "run").mkdir()
            train_detector(args.data, Path(tmp) / "run", budget, 0, n, n)
    finally:
        for event, hook in hooks.items():
            base.default_callbacks[event].remove(hook)
    step = [e - s for s, e in zip(marks["start"], marks["end"])]
    data = [s - e for e, s in zip(marks["end"], marks["start"][1:]) if s > e]  # the loader's next() between steps
    step, data = step[2:], data[2:]  # the first batches build the loader and warm oneDNN up
    flops = step_flops(budget.model, 10, budget.batch, budget.imgsz)
    peak = matmul_gflops()
    s, d = statistics.median(step), statistics.median(data)
    print(
        f"{budget.model} at {budget.imgsz} px, batch {budget.batch}, {torch.get_num_threads()} threads, "
        f"{len(step)} steps timed: {flops / 1e9:.2f} GFLOP per step (forward + backward)"
    )
    rows = (("data (loader, mosaic)", d), ("step (fwd, bwd, optim)", s), ("whole step", s + d))
    for name, seconds in rows:
        achieved = flops / seconds / 1e9 if name != rows[0][0] else 0.0
        print(f"{name + ':':<24}{seconds * 1e3:6.1f} ms  {seconds / (s + d):4.0%} of a step", end="")
        print(f"  {achieved:6.1f} GFLOP/s = {achieved / peak:.0%} of peak" if achieved else "")


if __name__ == "__main__":
    main()
