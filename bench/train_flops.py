"""Achieved GFLOP/s of the train_resnet step next to a plain fp32 matmul's, in one process, on the
threads the stage pins (``launch.training.threads``). FLOPs are counted by
``torch.utils.flop_counter`` on one real step (forward, backward); the step is the stage's own
(``synthaug.resnet.train``: batch drawing, shift augmentation, SGD) on images of the stage's shape.

    python bench/train_flops.py [--steps 30] [--layouts onednn,nchw,stage] [--workers 2]

``--workers N`` adds the stage's parallel layout (``launch.runs``): N processes of
``launch.runs.threads`` threads each, stepping at once; their summed GFLOP/s is what the stage's
runs achieve together on the same cores, next to the same matmul peak.

Layouts: ``stage`` is the stage's network (synthaug/convgrad.py: the weight gradients of
convolutions on maps of 2×2 and less as matmuls, in NHWC memory format); ``nchw`` the same in
NCHW; ``onednn`` NCHW with every gradient from oneDNN (the stage before convgrad). Each is another
kernel path, so their weights differ by rounding; the ones the stage does not use are printed to
show what it gained.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from synthaug.offline import harden

harden()
from synthaug.cli import pin_threads  # noqa: E402
from synthaug.convgrad import for_cpu_training, use_matmul_weight_grads  # noqa: E402
from synthaug.params import load_params  # noqa: E402
from synthaug.resnet import build_resnet, draw_batch, normalise, train  # noqa: E402


def matmul_gflops(n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def step_flops(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """Forward + backward FLOPs of one training step (the optimiser's are negligible)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(net(normalise(x)), y).backward()
    net.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def layout_net(cfg: object, classes: int, layout: str) -> torch.nn.Module:
    """The network a layout trains: the stage's (``stage``), the same in NCHW, or oneDNN's alone."""
    torch.manual_seed(0)
    net = build_resnet(cfg, classes)
    return {"stage": for_cpu_training, "nchw": use_matmul_weight_grads, "onednn": lambda n: n}[layout](net)


def images(n: int, size: int, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen), torch.arange(n) % classes


def worker_step_seconds(job: tuple[Path, int, int, str]) -> float:
    """Seconds per step of the stage's loop in this (spawned) process, on ``threads`` threads."""
    params_file, threads, steps, layout = job
    cfg = load_params(params_file).train_resnet
    pin_threads(threads)
    real, syn = images(160, 32, 10), images(320, 32, 10)
    net = layout_net(cfg, 10, layout)
    short = replace(cfg, steps=steps, eval_every=10**9)
    train(net, real, syn, (real[0][:1], real[1][:1]), 1.0, replace(short, steps=3), seed=0)
    t0 = time.perf_counter()
    train(net, real, syn, (real[0][:1], real[1][:1]), 1.0, short, seed=0)
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--layouts", default="onednn,nchw,stage")
    ap.add_argument("--workers", type=int, default=2, help="parallel 1-run processes (launch.runs); 1: skip")
    args = ap.parse_args()
    params = load_params(args.params)
    cfg, size, classes = params.train_resnet, params.data.image_size, 10
    pin_threads(params.launch.training.threads)
    real, syn = images(160, size, classes), images(320, size, classes)
    val = (real[0][:1], real[1][:1])
    short = replace(cfg, steps=args.steps, eval_every=10**9)
    x, y = draw_batch(real, syn, cfg.batch_size // 2, cfg.batch_size // 2, cfg.max_shift, torch.Generator())
    flops = step_flops(build_resnet(cfg, classes), x, y)
    peak = matmul_gflops()
    print(
        f"{cfg.arch} at {size} px, batch {cfg.batch_size}, {torch.get_num_threads()} threads: "
        f"{flops / 1e9:.2f} GFLOP per step (forward + backward, torch.utils.flop_counter)"
    )
    print(f"{'fp32 matmul 2048²':<28} {peak:7.1f} GFLOP/s  (peak on these threads)")
    for layout in args.layouts.split(","):
        net = layout_net(cfg, classes, layout)
        train(net, real, syn, val, 1.0, replace(short, steps=3), seed=0)  # warm-up: oneDNN primitives, allocator
        t0 = time.perf_counter()
        train(net, real, syn, val, 1.0, short, seed=0)
        seconds = (time.perf_counter() - t0) / args.steps
        achieved = flops / seconds / 1e9
        print(
            f"{'train step, ' + layout:<28} {achieved:7.1f} GFLOP/s  {achieved / peak:6.1%} of peak, "
            f"{seconds * 1e3:.0f} ms/step, {cfg.batch_size / seconds:.0f} images/s"
        )
    if args.workers > 1:
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        threads = params.launch.runs.threads
        for layout in args.layouts.split(","):
            with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
                jobs = [(args.params, threads, args.steps, layout)] * args.workers
                per_step = list(pool.map(worker_step_seconds, jobs))
            achieved = sum(flops / t for t in per_step) / 1e9
            label = f"{args.workers} runs x {threads} thread, {layout}"
            rate = sum(cfg.batch_size / t for t in per_step)
            print(
                f"{label:<28} {achieved:7.1f} GFLOP/s  {achieved / peak:6.1%} of peak together, "
                f"{max(per_step) * 1e3:.0f} ms/step each, {rate:.0f} images/s"
            )
    # the same count again after the runs: the machine's load moves between the lines above
    print(f"{'fp32 matmul 2048² (again)':<28} {matmul_gflops():7.1f} GFLOP/s")


if __name__ == "__main__":
    main()
