"""Training throughput of the train_resnet stage's loop next to a plain torchvision loop (DataLoader
over the same images, same model, batch and optimiser). Goal: stage ≥ 0.95× plain.

    python bench/train_resnet_speed.py [--data data/datasets/ddim --steps 40]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from synthaug.dag import Dag
from synthaug.offline import harden

harden()
from synthaug.layout import Dataset  # noqa: E402
from synthaug.params import load_params  # noqa: E402
from synthaug.resnet import build_resnet, load_folder, normalise, train  # noqa: E402


def plain_loop(x: torch.Tensor, y: torch.Tensor, cfg, steps: int, n_classes: int) -> float:
    """What a researcher writes by hand: a DataLoader and the textbook loop."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    net = build_resnet(cfg, n_classes).train()
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    loader = DataLoader(TensorDataset(normalise(x), y), batch_size=cfg.batch_size, shuffle=True, drop_last=True)
    done, t0 = 0, time.perf_counter()
    while done < steps:
        for xb, yb in loader:
            loss = torch.nn.functional.cross_entropy(net(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
            if done == steps:
                break
    return steps * cfg.batch_size / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--data", type=Path, default=Dag().arg("assemble@ddim", "--out"))
    ap.add_argument("--steps", type=int, default=40)
    args = ap.parse_args()
    cfg = load_params(args.params).train_resnet
    dataset = Dataset(args.data)
    classes = dataset.classes()
    real = load_folder(dataset.cls("train"), classes)
    syn = load_folder(dataset.cls("synthetic"), classes)
    x, y = torch.cat([real[0], syn[0]]), torch.cat([real[1], syn[1]])
    plain = plain_loop(x, y, cfg, args.steps, len(classes))
    torch.manual_seed(0)
    net = build_resnet(cfg, len(classes))
    short = replace(cfg, steps=args.steps, eval_every=10**9)
    t0 = time.perf_counter()
    train(net, real, syn, (real[0][:1], real[1][:1]), 1.0, short, seed=0)
    stage = args.steps * cfg.batch_size / (time.perf_counter() - t0)
    print(
        f"{cfg.arch}, {x.shape[-1]} px, batch {cfg.batch_size}, {args.steps} steps, {torch.get_num_threads()} threads"
    )
    print(f"plain torchvision loop: {plain:7.1f} images/s")
    print(f"train_resnet stage:     {stage:7.1f} images/s   ratio {stage / plain:.2f} (goal >= 0.95)")


if __name__ == "__main__":
    main()
