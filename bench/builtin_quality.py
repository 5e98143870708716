"""Quality bar of the builtin model: the share of its samples that a classifier trained on real
pool images labels as their conditioning class (goal ≥ 90% at 25 DDIM steps).

    python bench/builtin_quality.py [--scheduler ddim --steps 25 --per-class 100]

Prints the judge's own accuracy on the real test split, then the conditional accuracy (overall
and per class) of the builtin model's samples.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from synthaug.dag import Dag
from synthaug.offline import harden

harden()
from synthaug.diffusion import Sampling, from_uint8, load_backend  # noqa: E402
from synthaug.images import image_folder, load_array  # noqa: E402
from synthaug.layout import Real  # noqa: E402
from synthaug.params import load_params  # noqa: E402


def load_split(root: Path, classes: list[str], mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    files = image_folder(root, classes)
    return from_uint8(np.stack([load_array(f, mode) for f, _ in files])), torch.tensor([k for _, k in files])


def judge_net(channels: int, n_classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.3),
        nn.Linear(256, n_classes),
    )


def train_judge(x: torch.Tensor, y: torch.Tensor, n_classes: int, epochs: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    net = judge_net(x.shape[1], n_classes)
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(64):
            shift = torch.randint(-2, 3, (2,), generator=g).tolist()  # small translations
            loss = nn.functional.cross_entropy(net(torch.roll(x[idx], shift, dims=(2, 3))), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


@torch.inference_mode()
def predict(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([net(x[i : i + 512]).argmax(1) for i in range(0, len(x), 512)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--real", type=Path, default=Dag().arg("prepare", "--out"))
    ap.add_argument("--model", type=Path, default=Dag().arg("pretrain", "--out"))
    ap.add_argument("--scheduler", default="ddim")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    params = load_params(args.params)
    real = Real(args.real)
    classes = real.classes()
    mode = "L" if params.data.channels == 1 else "RGB"
    t0 = time.perf_counter()
    x_pool, y_pool = load_split(real.cls("pool"), classes, mode)
    judge = train_judge(x_pool, y_pool, len(classes), args.epochs, params.seed)
    x_test, y_test = load_split(real.cls("test"), classes, mode)
    judge_acc = (predict(judge, x_test) == y_test).float().mean().item()
    print(
        f"judge: trained on {len(x_pool)} real pool images in {time.perf_counter() - t0:.0f} s; "
        f"accuracy on {len(x_test)} real test images: {judge_acc:.3f}"
    )

    model = load_backend("builtin", args.model)
    ids = [k for k in range(len(classes)) for _ in range(args.per_class)]
    records = [{"class": k, "seed": 10_000 + i} for i, k in enumerate(ids)]
    options = params.schedulers.get(args.scheduler, {})
    t0 = time.perf_counter()
    samples = []
    for i in range(0, len(records), 100):
        sampling = Sampling.of(args.scheduler, model.scheduler_config, options, args.steps, params.generate.guidance)
        samples.append(model.txt2img(records[i : i + 100], sampling))
    seconds = (time.perf_counter() - t0) / len(records)
    pred = predict(judge, from_uint8(np.concatenate(samples)))
    truth = torch.tensor(ids)
    acc = (pred == truth).float().mean().item()
    per_class = {classes[k]: round((pred[truth == k] == k).float().mean().item(), 3) for k in range(len(classes))}
    print(
        f"builtin model, {args.scheduler} {args.steps} steps, guidance {params.generate.guidance:g}: "
        f"conditional accuracy {acc:.3f} over {len(records)} samples ({seconds * 1000:.1f} ms/image)"
    )
    print("per class:", per_class)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "judge_test_accuracy": judge_acc,
                    "conditional_accuracy": acc,
                    "per_class": per_class,
                    "seconds_per_image": seconds,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
