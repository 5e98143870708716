"""Stage ``train_resnet@<variant>-<seed>``: a torchvision ResNet on one variant's training set.

Inputs:  ``--data`` (data/datasets/<variant>): ``cls/train`` (real), ``cls/synthetic``, ``cls/val``
Outputs: ``--out`` (models/resnet/<variant>/seed<k>): ``model.safetensors``, ``config.json`` (the
         resolved config), ``history.csv`` (step, train loss, val accuracy; a DVC plot)
Params:  train_resnet.* (but seeds), variants.<variant>.ratio, data.image_size
Every variant gets the same fixed budget — steps, batch size, schedule — so a gain cannot come
from training longer; each batch draws round(batch × ratio / (1 + ratio)) synthetic images and the
rest real ones. Deterministic on CPU for a given seed.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn
from tqdm import tqdm

from synthaug.cli import run
from synthaug.errors import DataError
from synthaug.images import atomic_dir, image_folder, load_array
from synthaug.params import TrainResnetParams, load_params

log = logging.getLogger("train_resnet")


def build_resnet(cfg: TrainResnetParams, n_classes: int) -> nn.Module:
    weights = "DEFAULT" if cfg.weights == "imagenet" else None
    net = getattr(torchvision.models, cfg.arch)(weights=weights)
    net.fc = nn.Linear(net.fc.in_features, n_classes)
    if cfg.small_stem:  # a 7x7/2 conv + max-pool would shrink a 32 px digit to 8 px before layer1
        net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    return net


def load_folder(root: Path, classes: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 NCHW RGB images and labels of an ImageFolder split (empty tensors if none)."""
    files = image_folder(root, classes) if root.is_dir() else []
    if not files:
        return torch.zeros((0, 3, 1, 1), dtype=torch.uint8), torch.zeros(0, dtype=torch.long)
    x = np.stack([load_array(f, "RGB") for f, _ in files])
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.tensor([k for _, k in files])


def normalise(x: torch.Tensor) -> torch.Tensor:
    return x.float().div_(127.5).sub_(1.0)


def augment(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Random translation by up to ``max_shift`` px per image (zero padding), seeded."""
    if max_shift == 0:
        return x
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, (max_shift,) * 4)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None].expand(n, x.shape[1], h, w + 2 * max_shift)
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :].expand(n, x.shape[1], h, w)
    return out.gather(3, cols)


def lr_at(step: int, cfg: TrainResnetParams) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))


@torch.inference_mode()
def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 256) -> float:
    net.eval()
    pred = torch.cat([net(normalise(x[i : i + batch])).argmax(1) for i in range(0, len(x), batch)])
    net.train()
    return float((pred == y).float().mean())


def train(net: nn.Module, real: tuple[torch.Tensor, torch.Tensor], synthetic: tuple[torch.Tensor, torch.Tensor],
          val: tuple[torch.Tensor, torch.Tensor], ratio: float, cfg: TrainResnetParams, seed: int,
          desc: str = "resnet") -> list[dict]:
    """The fixed-budget loop; returns the history rows (one per ``eval_every`` steps)."""
    gen = torch.Generator().manual_seed(seed)
    n_syn = round(cfg.batch_size * ratio / (1 + ratio)) if len(synthetic[0]) else 0
    n_real = cfg.batch_size - n_syn
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                          nesterov=cfg.momentum > 0)
    history, running = [], []
    net.train()
    bar = tqdm(range(cfg.steps), desc=desc, unit="step")
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        idx_r = torch.randint(0, len(real[0]), (n_real,), generator=gen)
        xs, ys = [real[0][idx_r]], [real[1][idx_r]]
        if n_syn:
            idx_s = torch.randint(0, len(synthetic[0]), (n_syn,), generator=gen)
            xs.append(synthetic[0][idx_s])
            ys.append(synthetic[1][idx_s])
        x = normalise(augment(torch.cat(xs), cfg.max_shift, gen))
        loss = nn.functional.cross_entropy(net(x), torch.cat(ys))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running.append(loss.item())
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            row = {"step": step + 1, "train_loss": round(float(np.mean(running)), 6),
                   "val_accuracy": round(accuracy(net, *val), 6)}
            history.append(row)
            running = []
            bar.set_postfix(loss=row["train_loss"], val=row["val_accuracy"])
    return history


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, required=True)
    ap.add_argument("--variant", required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    params = load_params(args.params)
    cfg = params.train_resnet
    if args.variant not in params.variants:
        raise DataError(f"--variant {args.variant}: no variants.{args.variant} in {args.params}")
    ratio = params.variants[args.variant].ratio
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    classes = json.loads((args.data / "classes.json").read_text())
    real = load_folder(args.data / "cls" / "train", classes)
    synthetic = load_folder(args.data / "cls" / "synthetic", classes)
    val = load_folder(args.data / "cls" / "val", classes)
    if not len(real[0]) or not len(val[0]):
        raise DataError(f"{args.data}/cls: no train or val images; run `dvc repro assemble@{args.variant}`")
    if real[0].shape[-1] != params.data.image_size:
        raise DataError(f"{args.data}/cls: images are {real[0].shape[-1]} px, data.image_size is "
                        f"{params.data.image_size}; rerun prepare")
    net = build_resnet(cfg, len(classes))
    log.info("%s seed %d: %d real + %d synthetic images (ratio %g), %d steps of %d", args.variant, args.seed,
             len(real[0]), len(synthetic[0]), ratio, cfg.steps, cfg.batch_size)
    t0 = time.perf_counter()
    history = train(net, real, synthetic, val, ratio, cfg, args.seed, desc=f"resnet {args.variant}/{args.seed}")
    seconds = time.perf_counter() - t0
    with atomic_dir(args.out) as tmp:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, tmp / "model.safetensors")
        config = {"variant": args.variant, "seed": args.seed, "ratio": ratio, "classes": classes,
                  "image_size": params.data.image_size, **{k: getattr(cfg, k) for k in cfg.__dataclass_fields__
                                                           if k != "seeds"}}
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        with open(tmp / "history.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(history[0]))
            writer.writeheader()
            writer.writerows(history)
    log.info("final val accuracy %.3f; %.0f s, %.1f images/s", history[-1]["val_accuracy"], seconds,
             cfg.steps * cfg.batch_size / seconds)


if __name__ == "__main__":
    run(main)
