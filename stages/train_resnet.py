"""Stage ``train_resnet@<variant>``: a torchvision ResNet per seed on one variant's training set.

Inputs:  ``--data`` (data/datasets/<variant>): ``cls/train`` (real), ``cls/synthetic``, ``cls/val``
Outputs: ``--out`` (models/resnet/<variant>): ``seed<k>/model.safetensors``, ``seed<k>/config.json``
         (the resolved config); ``--history`` (plots/train_resnet/<variant>, DVC plots):
         ``seed<k>.csv`` (step, train loss, val accuracy)
Params:  train_resnet.*, trials.resnet_seeds, variants.<variant>.ratio, data.image_size, launch.training.processes,
         launch.training.threads
Every seed of a variant trains in this one process (one start-up, one dataset load); each run is
the one a process of its own would make: the seed alone fixes its initial weights and batches.
Every variant gets the same fixed budget — steps, batch size, schedule — so a gain cannot come
from training longer; each batch draws round(batch × ratio / (1 + ratio)) synthetic images and the
rest real ones. Deterministic on CPU for a given seed, process count and thread count. Under
``python -m synthaug.launch training`` it is DDP over launch.training.processes processes with
the same global batch and steps; the main process alone writes ``--out``.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from synthaug.cli import parse_args, run
from synthaug.errors import DataError
from synthaug.launch import process_group
from synthaug.layout import Dataset, Run, history_file
from synthaug.params import Params, ParamsError, load_params
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


def train_seed(args: argparse.Namespace, params: Params, group: Any, data: tuple, seed: int) -> None:
    """One seed's run, as a stage of its own would make it: the seed fixes the initial weights and
    every batch, so a run is the same whichever seeds share the process."""
    cfg, ratio = params.train_resnet, params.variants[args.variant].ratio
    classes, real, synthetic, val = data
    torch.manual_seed(seed)
    net = build_resnet(cfg, len(classes)).to(group.device if group.num_processes > 1 else cfg.device)
    t0 = time.perf_counter()
    history = train(net, real, synthetic, val, ratio, cfg, seed, desc=f"resnet {args.variant}/{seed}", group=group)
    seconds = time.perf_counter() - t0
    if group.is_main_process:
        run = Run.of(args.out, seed)
        save_trained(
            run.root,
            net.cpu(),
            cfg,
            history,
            history_file(args.history, seed),
            variant=args.variant,
            seed=seed,
            ratio=ratio,
            classes=classes,
            image_size=params.data.image_size,
        )
        log.info(
            "seed %d: final val accuracy %.3f; %.0f s, %.1f images/s; wrote %s",
            seed,
            history[-1]["val_accuracy"],
            seconds,
            cfg.steps * cfg.batch_size / seconds,
            run.root,
        )


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv, "data", "out", "history", variant=str)
    params = load_params(args.params)
    cfg = params.train_resnet
    if args.variant not in params.variants:
        raise DataError(f"--variant {args.variant}: no variants.{args.variant} in {args.params}")
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
    torch.use_deterministic_algorithms(True)
    data = load_dataset(args.data, args.variant, params.data.image_size)
    if group.is_main_process:
        log.info(
            "%s: %d real + %d synthetic images (ratio %g), seeds %s, %d steps of %d over %d process(es)",
            args.variant,
            len(data[1][0]),
            len(data[2][0]),
            params.variants[args.variant].ratio,
            ", ".join(map(str, params.trials.resnet_seeds)),
            cfg.steps,
            cfg.batch_size,
            group.num_processes,
        )
    for seed in params.trials.resnet_seeds:
        train_seed(args, params, group, data, seed)


if __name__ == "__main__":
    run(main)
