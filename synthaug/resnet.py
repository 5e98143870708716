"""ResNet classifiers shared by the stages that train one (train_resnet, judge) and those that
read one (assemble's filter, evaluate, quality): building, the fixed-budget loop (one process, or
DDP over launched processes), loading a trained model, and batched predictions and
penultimate-layer features."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from synthaug.errors import ModelError
from synthaug.files import write_csv, write_json
from synthaug.images import atomic_dir, image_folder, load_array
from synthaug.layout import Run
from synthaug.params import ResnetBudget


def build_resnet(cfg: ResnetBudget, n_classes: int, pretrained: bool = True) -> nn.Module:
    """torchvision ResNet with an ``n_classes`` head; ``pretrained=False`` skips ImageNet weights
    (a trained model's own weights are loaded over them anyway)."""
    weights = "DEFAULT" if cfg.weights == "imagenet" and pretrained else None
    net = getattr(torchvision.models, cfg.arch)(weights=weights)
    net.fc = nn.Linear(net.fc.in_features, n_classes)
    if cfg.small_stem:  # a 7x7/2 conv + max-pool would shrink a 32 px digit to 8 px before layer1
        net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    return net


def load_images(files: Sequence[Path], fit: tuple[int, int] | None = None) -> torch.Tensor:
    """uint8 NCHW RGB tensor of image files (the classifiers' input format); ``fit`` =
    (data.image_size, data.channels) converts generated images of any size as assemble does."""
    if not files:
        return torch.zeros((0, 3, 1, 1), dtype=torch.uint8)
    return torch.from_numpy(np.stack([load_array(f, "RGB", fit) for f in files])).permute(0, 3, 1, 2).contiguous()


def load_folder(root: Path, classes: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 NCHW RGB images and labels of an ImageFolder split (empty tensors if none)."""
    files = image_folder(root, classes) if root.is_dir() else []
    return load_images([f for f, _ in files]), torch.tensor([k for _, k in files], dtype=torch.long)


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


def lr_at(step: int, cfg: ResnetBudget) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))


def _device(net: nn.Module) -> torch.device:
    return next(net.parameters()).device


@torch.inference_mode()
def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 256) -> float:
    net.eval()
    dev = _device(net)
    pred = torch.cat([net(normalise(x[i : i + batch].to(dev))).argmax(1).cpu() for i in range(0, len(x), batch)])
    net.train()
    return float((pred == y).float().mean())


def draw_batch(
    real: tuple[torch.Tensor, torch.Tensor],
    synthetic: tuple[torch.Tensor, torch.Tensor],
    n_real: int,
    n_syn: int,
    max_shift: int,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One global batch: ``n_real`` real and ``n_syn`` synthetic images drawn with replacement, shifted."""
    idx_r = torch.randint(0, len(real[0]), (n_real,), generator=gen)
    xs, ys = [real[0][idx_r]], [real[1][idx_r]]
    if n_syn:
        idx_s = torch.randint(0, len(synthetic[0]), (n_syn,), generator=gen)
        xs.append(synthetic[0][idx_s])
        ys.append(synthetic[1][idx_s])
    return augment(torch.cat(xs), max_shift, gen), torch.cat(ys)


def train(
    net: nn.Module,
    real: tuple[torch.Tensor, torch.Tensor],
    synthetic: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    ratio: float,
    cfg: ResnetBudget,
    seed: int,
    desc: str = "resnet",
    group: Any = None,
) -> list[dict]:
    """The fixed-budget loop on ``net``'s device; returns the history rows (one per ``eval_every``
    steps; on the main process only when ``group`` — synthaug.launch.process_group — has several).

    Under several processes it is DDP with the same budget: every process draws the same global
    batch of ``cfg.batch_size`` (a multiple of the world size: params.py checks) and trains on every
    ``world``-th image of it, and DDP averages the gradients, so the step sizes and the images seen
    are those of one process (only batch-norm statistics are per process)."""
    world = group.num_processes if group is not None else 1
    rank = group.process_index if group is not None else 0
    main = rank == 0
    dev = _device(net)
    model = net
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(net, device_ids=[dev] if dev.type == "cuda" else None)
    gen = torch.Generator().manual_seed(seed)
    n_syn = round(cfg.batch_size * ratio / (1 + ratio)) if len(synthetic[0]) else 0
    n_real = cfg.batch_size - n_syn
    # foreach: one multi-tensor kernel per update term instead of a Python loop over 62 tensors; on
    # the CPU torch leaves it off by default. Same arithmetic in the same order: identical weights
    # (measured), 11 % faster a step (bench/train_flops.py). ``fused`` is faster still but rounds differently.
    opt = torch.optim.SGD(
        net.parameters(),
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        nesterov=cfg.momentum > 0,
        foreach=True,
    )
    history, running = [], []
    net.train()
    bar = tqdm(range(cfg.steps), desc=desc, unit="step", disable=not main)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        x, y = draw_batch(real, synthetic, n_real, n_syn, cfg.max_shift, gen)
        x, y = x[rank::world], y[rank::world]  # interleaved: real and synthetic on every rank
        loss = nn.functional.cross_entropy(model(normalise(x.to(dev))), y.to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if world > 1:
            loss = loss.detach().clone()
            torch.distributed.all_reduce(loss)
            loss /= world
        running.append(loss.item())
        if main and ((step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps):
            row = {
                "step": step + 1,
                "train_loss": round(float(np.mean(running)), 6),
                "val_accuracy": round(accuracy(net, *val), 6),
            }
            history.append(row)
            running = []
            bar.set_postfix(loss=row["train_loss"], val=row["val_accuracy"])
    return history


def save_trained(
    out: Path,
    net: nn.Module,
    cfg: ResnetBudget,
    history: list[dict],
    history_file: Path | None = None,
    dtype: torch.dtype = torch.float32,
    **info,
) -> None:
    """Write ``model.safetensors`` (floating tensors as ``dtype``: float16 halves a model kept in
    git), ``config.json`` (``info`` + the budget) and the history rows at once: to ``history_file``
    when given (a DVC plots folder), else to the run's ``history.csv``."""
    state = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in net.state_dict().items()}
    with atomic_dir(out) as tmp:
        run = Run(tmp)
        save_file(state, run.weights)
        write_json(run.config, info | {k: getattr(cfg, k) for k in ResnetBudget.__dataclass_fields__})
        write_csv(history_file or run.history, history)


def load_trained(folder: Path) -> tuple[nn.Module, dict]:
    """A trained model folder (``config.json`` + ``model.safetensors``) → eval-mode net, config."""
    try:
        config = json.loads(Run(folder).config.read_text())
        state = load_file(Run(folder).weights)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{folder}: not a trained ResNet folder ({exc})") from None
    net = build_resnet(
        ResnetBudget(**{k: config[k] for k in ResnetBudget.__dataclass_fields__}),
        len(config["classes"]),
        pretrained=False,
    )
    net.load_state_dict(state)
    return net.eval(), config


@torch.inference_mode()
def predict(net: nn.Module, x: torch.Tensor, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities and penultimate-layer (pre-``fc``) features of uint8 NCHW images."""
    net.eval()
    dev = _device(net)
    feats: list[torch.Tensor] = []
    hook = net.fc.register_forward_hook(lambda _m, inp, _out: feats.append(inp[0].cpu()))
    try:
        probs = [net(normalise(x[i : i + batch].to(dev))).softmax(1).cpu() for i in range(0, len(x), batch)]
    finally:
        hook.remove()
    if not probs:
        return torch.zeros((0, net.fc.out_features)), torch.zeros((0, net.fc.in_features))
    return torch.cat(probs), torch.cat(feats)
