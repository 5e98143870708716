"""Stage ``train_resnet@<variant>-<seed>``: a torchvision ResNet on one variant's training set.

Inputs:  ``--data`` (data/datasets/<variant>): ``cls/train`` (real), ``cls/synthetic``, ``cls/val``
Outputs: ``--out`` (models/resnet/<variant>/seed<k>): ``model.safetensors``, ``config.json`` (the
         resolved config), ``history.csv`` (step, train loss, val accuracy; a DVC plot)
Params:  train_resnet.* (but seeds), variants.<variant>.ratio, data.image_size,
         launch.training.processes, launch.training.threads
Every variant gets the same fixed budget — steps, batch size, schedule — so a gain cannot come
from training longer; each batch draws round(batch × ratio / (1 + ratio)) synthetic images and the
rest real ones. Deterministic on CPU for a given seed, process count and thread count. Under
``python -m synthaug.launch training`` it is DDP over launch.training.processes processes with
the same global batch and steps; the main process alone writes ``--out``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from synthaug.cli import parse_args, run
from synthaug.errors import DataError
from synthaug.launch import process_group
from synthaug.layout import Dataset
from synthaug.params import ParamsError, load_params
from synthaug.resnet import build_resnet, load_folder, save_trained, train

log = logging.getLogger("train_resnet")


def load_dataset(data: Path, variant: str, image_size: int) -> tuple[list[str], tuple, tuple, tuple]:
    """The variant's class names and its real train, synthetic and val images (as tensors)."""
    dataset = Dataset(data)
    classes = dataset.classes()
    real, synthetic, val = (load_folder(dataset.cls(s), classes) for s in ("train", "synthetic", "val"))
    if not len(real[0]) or not len(val[0]):
        raise DataError(f"{dataset.cls('')}: no train or val images; run `dvc repro assemble@{variant}`")
    if real[0].shape[-1] != image_size:
        raise DataError(
            f"{dataset.cls('')}: images are {real[0].shape[-1]} px, data.image_size is {image_size}; rerun prepare"
        )
    return classes, real, synthetic, val


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv, "data", "out", variant=str, seed=int)
    params = load_params(args.params)
    cfg = params.train_resnet
    if args.variant not in params.variants:
        raise DataError(f"--variant {args.variant}: no variants.{args.variant} in {args.params}")
    ratio = params.variants[args.variant].ratio
    launch = params.launch.training
    group = process_group(cfg.device, launch)
    if group.num_processes != launch.processes:
        raise ParamsError(
            f"{args.params}: launch.training.processes is {launch.processes} but {group.num_processes} "
            "processes run; start the stage with `python -m synthaug.launch training ...` (dvc.yaml "
            "does), or set processes to the number launched"
        )
    if cfg.device == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    classes, real, synthetic, val = load_dataset(args.data, args.variant, params.data.image_size)
    net = build_resnet(cfg, len(classes)).to(group.device if group.num_processes > 1 else cfg.device)
    if group.is_main_process:
        log.info(
            "%s seed %d: %d real + %d synthetic images (ratio %g), %d steps of %d over %d process(es)",
            args.variant,
            args.seed,
            len(real[0]),
            len(synthetic[0]),
            ratio,
            cfg.steps,
            cfg.batch_size,
            group.num_processes,
        )
    t0 = time.perf_counter()
    history = train(
        net, real, synthetic, val, ratio, cfg, args.seed, desc=f"resnet {args.variant}/{args.seed}", group=group
    )
    seconds = time.perf_counter() - t0
    if group.is_main_process:
        save_trained(
            args.out,
            net.cpu(),
            cfg,
            history,
            variant=args.variant,
            seed=args.seed,
            ratio=ratio,
            classes=classes,
            image_size=params.data.image_size,
        )
        log.info(
            "final val accuracy %.3f; %.0f s, %.1f images/s; wrote %s",
            history[-1]["val_accuracy"],
            seconds,
            cfg.steps * cfg.batch_size / seconds,
            args.out,
        )


if __name__ == "__main__":
    run(main)
