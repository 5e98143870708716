"""Where a train_yolo step's time goes: data (Ultralytics' loader — reading, mosaic, letterbox,
collate — in the main process, ``workers: 0`` on the CPU) against the step itself (preprocess,
forward, loss, backward, optimiser, EMA), next to the step's FLOPs and a matmul's GFLOP/s; then
the stage's way on the CPU, ``launch.runs.workers`` runs at once of ``launch.runs.threads`` each,
against one run of ``launch.training.threads`` (the whole machine's threads) side by side.

    python bench/yolo_profile.py [--data data/datasets/baseline/det/data.yaml] [--epochs 3] [--workers 2]

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
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context
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


def profile(params_file: Path, data: Path, epochs: int, threads: int) -> tuple[float, float]:
    """Median seconds of the loader's ``next()`` and of the step, over ``epochs`` epochs of
    train_yolo's budget trained on ``threads`` torch threads in this process."""
    ultralytics_offline()
    from ultralytics.utils.callbacks import base

    budget = budget_from_params(load_params(params_file))
    budget = replace(budget, epochs=epochs, close_mosaic=1, warmup_epochs=0, threads=threads)
    n = len(list((data.parent / "images" / "train").glob("*.png")))
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
            train_detector(data, Path(tmp) / "run", budget, 0, n, n)
    finally:
        for event, hook in hooks.items():
            base.default_callbacks[event].remove(hook)
    step = [e - s for s, e in zip(marks["start"], marks["end"])]
    loads = [s - e for e, s in zip(marks["end"], marks["start"][1:]) if s > e]  # the loader's next() between steps
    return statistics.median(loads[2:]), statistics.median(step[2:])  # the first batches warm oneDNN up


def _profile(job: tuple) -> tuple[float, float]:
    return profile(*job)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--data", type=Path, default=Dag().arg("assemble@baseline", "--out") / "det" / "data.yaml")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--workers", type=int, help="runs at once (default launch.runs.workers; 1: skip that part)")
    args = ap.parse_args()
    params = load_params(args.params)
    budget, runs = budget_from_params(params), params.launch.runs
    workers = args.workers or runs.workers
    threads = params.launch.training.threads
    d, s = profile(args.params, args.data, args.epochs, threads)
    flops = step_flops(budget.model, 10, budget.batch, budget.imgsz)
    peak = matmul_gflops()
    print(
        f"{budget.model} at {budget.imgsz} px, batch {budget.batch}, one run of {threads} threads, "
        f"{flops / 1e9:.2f} GFLOP per step (forward + backward)"
    )
    rows = (("data (loader, mosaic)", d), ("step (fwd, bwd, optim)", s), ("whole step", s + d))
    for name, seconds in rows:
        achieved = flops / seconds / 1e9 if name != rows[0][0] else 0.0
        print(f"{name + ':':<24}{seconds * 1e3:6.1f} ms  {seconds / (s + d):4.0%} of a step", end="")
        print(f"  {achieved:6.1f} GFLOP/s = {achieved / peak:.0%} of peak" if achieved else "")
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            each = list(pool.map(_profile, [(args.params, args.data, args.epochs, runs.threads)] * workers))
        achieved = sum(flops / (d + s) for d, s in each) / 1e9
        whole = max(d + s for d, s in each)
        print(
            f"{workers} runs at once x {runs.threads} thread(s): {whole * 1e3:.1f} ms a whole step each, "
            f"{achieved:.1f} GFLOP/s = {achieved / peak:.0%} of peak together; "
            f"{workers * (s + d) / whole:.2f}x the steps per second of the one run above"
        )
    print(f"fp32 matmul 2048² (peak on {threads} threads): {peak:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
