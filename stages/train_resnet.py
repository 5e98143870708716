"""Stage ``train_resnet@<variant>``: a torchvision ResNet per regime and seed on one variant's training set.

Inputs:  ``--data`` (data/datasets/<variant>): ``cls/train`` (real), ``cls/synthetic``, ``cls/val``
Outputs: ``--out`` (models/resnet/<variant>): ``<k>shot/seed<s>/model.safetensors``, ``config.json``
         (the resolved config, the real files it saw, the machine: CPU, torch's CPU capability,
         threads); ``--history`` (plots/train_resnet/<variant>,
         DVC plots): ``<k>shot/seed<s>.csv`` (step, train loss, val accuracy)
Params:  train_resnet.*, trials.shots, trials.resnet_seeds, variants.<variant> (source, ratio, shots, seeds),
         data.image_size, launch.training.processes, launch.training.threads (DDP), launch.runs.threads
         (one process: each run's threads; launch.runs.workers, how many run at once, changes no result)
A regime is ``k`` real train images per class (``variants.<variant>.shots``, else ``trials.shots``),
with the seeds trials.resnet_seeds (more where ``variants.<variant>.seeds`` asks). Seed ``s``
draws them from the train split (all of them when ``k`` is its size), the same draw for every variant,
so a variant and the baseline of one seed see the same real images (paired) and the interval over
seeds covers which real images were chosen. An img2img variant keeps only the
variants of those ``k`` images. Every run of a variant trains in this one process (one start-up,
one dataset load); each run is the one a process of its own would make: the seed and ``k`` alone
fix its images, initial weights and batches. Every variant and regime gets the same fixed budget —
steps, batch size, schedule — so a gain cannot come from training longer; each batch draws
round(batch × ratio / (1 + ratio)) synthetic images and the rest real ones. Deterministic on CPU
for a given seed, process count and thread count. Under
``python -m synthaug.launch training`` it is DDP over launch.training.processes processes with
the same global batch and steps; the main process alone writes ``--out``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthaug import checksums
from synthaug.cli import parse_args, pin_threads, run
from synthaug.convgrad import for_cpu_training
from synthaug.errors import DataError
from synthaug.images import image_folder
from synthaug.launch import in_workers, process_group
from synthaug.layout import Dataset, Run, history_file, regime
from synthaug.params import Params, ParamsError, load_params, resnet_seeds
from synthaug.provenance import machine
from synthaug.resnet import build_resnet, load_images, save_trained, train

log = logging.getLogger("train_resnet")
SPLITS = ("train", "synthetic", "val")


def load_dataset(data: Path, variant: str, image_size: int) -> tuple[list[str], dict[str, list], dict[str, tuple]]:
    """The variant's class names, and per split (real train, synthetic, val) its (file, class) list
    and its images and labels as tensors."""
    dataset = Dataset(data)
    checksums.verify(*(dataset.cls(s) for s in SPLITS if dataset.cls(s).is_dir()))  # a missing one: below
    classes = dataset.classes()
    files = {s: image_folder(dataset.cls(s), classes) if dataset.cls(s).is_dir() else [] for s in SPLITS}
    if not files["train"] or not files["val"]:
        raise DataError(f"{dataset.cls('')}: no train or val images; run `dvc repro assemble@{variant}`")
    tensors = {
        s: (load_images([f for f, _ in files[s]]), torch.tensor([k for _, k in files[s]], dtype=torch.long))
        for s in SPLITS
    }
    if tensors["train"][0].shape[-1] != image_size:
        raise DataError(
            f"{dataset.cls('')}: images are {tensors['train'][0].shape[-1]} px, data.image_size is {image_size}; "
            "rerun prepare"
        )
    return classes, files, tensors


def draw_shots(files: list[tuple[Path, int]], n_classes: int, shots: int, seed: int, where: Path) -> np.ndarray:
    """Indices of ``shots`` real train images per class: all of a class when it has exactly that many,
    else a draw fixed by (seed, shots) alone — the same for every variant, so runs pair by seed."""
    rng = np.random.default_rng([seed, shots])
    chosen = []
    for k in range(n_classes):
        idx = np.array([i for i, (_, label) in enumerate(files) if label == k])
        if len(idx) < shots:
            raise DataError(
                f"{where}: class {k} has {len(idx)} train images, trials.shots asks for {shots}; lower trials.shots"
            )
        chosen.append(idx if len(idx) == shots else np.sort(rng.choice(idx, shots, replace=False)))
    return np.concatenate(chosen)


def regime_data(data: tuple, shots: int, seed: int, img2img: bool, where: Path) -> tuple[tuple, tuple, list[str]]:
    """The real and synthetic (images, labels) one run of ``shots`` per class trains on, and the real
    files' names; img2img's synthetic images are only the variants of the chosen real images."""
    classes, files, tensors = data
    chosen = draw_shots(files["train"], len(classes), shots, seed, where)
    names = [files["train"][i][0].stem for i in chosen]
    x, y = tensors["synthetic"]
    if img2img and len(x):  # a variant is named <real image>-v<k>.png (synthaug.layout.variant_name)
        keep = set(names)
        sel = torch.tensor([f.stem.rsplit("-v", 1)[0] in keep for f, _ in files["synthetic"]], dtype=torch.bool)
        x, y = x[sel], y[sel]
    index = torch.from_numpy(chosen)
    return (tensors["train"][0][index], tensors["train"][1][index]), (x, y), names


def train_run(args: argparse.Namespace, params: Params, group: Any, data: tuple, shots: int, seed: int) -> None:
    """One run, as a stage of its own would make it: ``shots`` and the seed fix its real images,
    initial weights and every batch, so a run is the same whichever runs share the process."""
    cfg, variant = params.train_resnet, params.variants[args.variant]
    ratio = variant.ratio
    classes, val = data[0], data[2]["val"]
    real, synthetic, names = regime_data(data, shots, seed, variant.source.startswith("img2img/"), args.data)
    torch.manual_seed(seed)
    net = build_resnet(cfg, len(classes)).to(group.device if group.num_processes > 1 else cfg.device)
    if cfg.device == "cpu":  # 2.6x the images/s of oneDNN's defaults (synthaug/convgrad.py)
        net = for_cpu_training(net)
    t0 = time.perf_counter()
    desc = f"resnet {args.variant}/{regime(shots)}/{seed}"
    history = train(net, real, synthetic, val, ratio, cfg, seed, desc=desc, group=group)
    seconds = time.perf_counter() - t0
    if group.is_main_process:
        run = Run.of(args.out, seed, regime(shots))
        save_trained(
            run.root,
            net.cpu(),
            cfg,
            history,
            history_file(args.history, seed, regime(shots)),
            variant=args.variant,
            seed=seed,
            shots=shots,
            ratio=ratio,
            classes=classes,
            image_size=params.data.image_size,
            real_images=len(real[0]),
            synthetic_images=len(synthetic[0]),
            real_files=names,
            machine=machine(),  # the CPU and kernels its floating-point results came from
        )
        log.info(
            "%s seed %d: final val accuracy %.3f; %.0f s, %.1f images/s; wrote %s",
            regime(shots),
            seed,
            history[-1]["val_accuracy"],
            seconds,
            cfg.steps * cfg.batch_size / seconds,
            run.root,
        )


def setup(argv: Sequence[str] | None) -> tuple[argparse.Namespace, Params, Any, tuple]:
    """The stage's arguments, params, process group and dataset, with torch's threads pinned: the
    training processes' (DDP) or, in one process, each run's (``launch.runs.threads``)."""
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
    if group.num_processes == 1:
        pin_threads(params.launch.runs.threads)
    if cfg.device == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    torch.use_deterministic_algorithms(True)
    return args, params, group, load_dataset(args.data, args.variant, params.data.image_size)


def work(state: tuple, shots: int, seed: int) -> None:
    """One run in a worker process whose ``state`` is its own :func:`setup`."""
    args, params, group, data = state
    train_run(args, params, group, data, shots, seed)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, params, group, data = setup(argv)
    cfg, workers = params.train_resnet, params.launch.runs.workers
    regimes = params.variants[args.variant].shots or params.trials.shots  # variants.<v>.shots: some of them
    runs = [(shots, seed) for shots in regimes for seed in resnet_seeds(params, args.variant, shots)]
    workers = min(workers, len(runs)) if group.num_processes == 1 and cfg.device == "cpu" else 1
    if group.is_main_process:
        log.info(
            "%s: %d real + %d synthetic images (ratio %g), seeds per regime %s, %d steps of %d; %s",
            args.variant,
            len(data[1]["train"]),
            len(data[1]["synthetic"]),
            params.variants[args.variant].ratio,
            ", ".join(f"{shots} shots: {len(resnet_seeds(params, args.variant, shots))}" for shots in regimes),
            cfg.steps,
            cfg.batch_size,
            f"DDP over {group.num_processes} processes"
            if group.num_processes > 1
            else f"{workers} run(s) at once of {params.launch.runs.threads} thread(s)",
        )
    if workers == 1:
        for shots, seed in runs:
            train_run(args, params, group, data, shots, seed)
        return
    in_workers(work, runs, workers, setup, (argv,))


if __name__ == "__main__":
    run(main)
