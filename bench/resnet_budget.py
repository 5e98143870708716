"""Which ResNet budget the regimes can afford: seconds per run, and the accuracy and paired spread it gives.

    python bench/resnet_budget.py --datasets data/datasets --real data/real \
        [--variants baseline real_pool ddim] [--shots 1 4 16] [--seeds 0 1 2] [--budgets 150x64 60x32]

Trains each variant at each shot count and seed with each budget (steps × batch; every other key
as in params.yaml's train_resnet), exactly as ``train_resnet`` does (its own k-shot draw, mixing and
loop), scores every run on the real test split, and prints per budget and cell the mean test accuracy,
the standard deviation over seeds of the paired difference to the baseline, and the seconds a run
takes. Run it on a quiet machine: the seconds are the point.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stages.train_resnet import load_dataset, regime_data
from synthaug.cli import pin_threads
from synthaug.layout import Real
from synthaug.params import BASELINE, load_params
from synthaug.resnet import build_resnet, load_folder, predict, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--datasets", type=Path, default=Path("data/datasets"))
    ap.add_argument("--real", type=Path, default=Path("data/real"))
    ap.add_argument("--variants", nargs="+", default=[BASELINE, "real_pool", "ddim"])
    ap.add_argument("--shots", nargs="+", type=int, default=[1, 4, 16])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--budgets", nargs="+", default=["150x64", "60x32"], help="steps x batch")
    args = ap.parse_args()
    params = load_params(args.params)
    pin_threads(params.launch.training.threads)
    torch.use_deterministic_algorithms(True)
    real = Real(args.real)
    test = load_folder(real.cls("test"), real.classes())
    data = {v: load_dataset(args.datasets / v, v, params.data.image_size) for v in args.variants}
    print(f"{torch.get_num_threads()} threads; test images: {len(test[0])}")
    for budget in args.budgets:
        steps, batch = map(int, budget.split("x"))
        warmup = max(1, round(steps * params.train_resnet.warmup_steps / params.train_resnet.steps))
        cfg = dataclasses.replace(
            params.train_resnet, steps=steps, batch_size=batch, warmup_steps=warmup, eval_every=steps
        )
        acc: dict[tuple[str, int], list[float]] = {}
        seconds = []
        for v in args.variants:
            img2img = params.variants[v].source.startswith("img2img/")
            for k in args.shots:
                for seed in args.seeds:
                    r, s, _ = regime_data(data[v], k, seed, img2img, args.datasets / v)
                    torch.manual_seed(seed)
                    net = build_resnet(cfg, len(data[v][0]))
                    t0 = time.perf_counter()
                    train(net, r, s, data[v][2]["val"], params.variants[v].ratio, cfg, seed, desc=f"{v}/{k}/{seed}")
                    seconds.append(time.perf_counter() - t0)
                    pred = predict(net, test[0])[0].argmax(1)
                    acc.setdefault((v, k), []).append(float((pred == test[1]).float().mean()))
        print(f"\nbudget {steps} steps x {batch} (warm-up {warmup}): {np.median(seconds):.1f} s a run (median)")
        print(f"{'variant':<12}{'shots':>6}{'accuracy':>10}{'sd':>8}{'diff':>9}{'sd(diff)':>10}")
        for (v, k), a in acc.items():
            diff = np.subtract(a, acc[(BASELINE, k)]) if (BASELINE, k) in acc and v != BASELINE else None
            print(
                f"{v:<12}{k:>6}{np.mean(a):>10.3f}{np.std(a, ddof=1):>8.3f}"
                + (f"{diff.mean():>+9.3f}{diff.std(ddof=1):>10.3f}" if diff is not None else "")
            )


if __name__ == "__main__":
    main()
