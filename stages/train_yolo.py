"""Stage ``train_yolo@<variant>``: an Ultralytics YOLO detector per seed on one variant's dataset.

Inputs:  ``--data`` (data/datasets/<variant>/det/data.yaml), ``--pretrained`` (models/yolo_pretrained:
         the class-agnostic detector every run starts from when ``train_yolo.init: pretrained``)
Outputs: ``--out`` (models/yolo/<variant>): per seed, ``seed<k>/model.safetensors`` (the final EMA
         weights as a plain state dict: the model evaluate scores) and ``seed<k>/budget.json``
         (what really happened — epochs, optimiser steps counted on the optimiser, steps without
         mosaic, images seen); ``--runs`` (runs/yolo/<variant>): Ultralytics' own run files per seed
         (``args.yaml``, ``weights/{best,last}.pt``), which carry dates and temp paths, so no stage
         reads them; ``--history`` (plots/train_yolo/<variant>, DVC plots): each seed's
         ``results.csv``; ``--timings`` (timings/train_yolo/<variant>.json): seconds per seed
Params:  train_yolo.*, trials.yolo_seeds, launch.runs.threads (each run's torch threads;
         launch.runs.workers, how many run at once on the CPU, changes no result); ``device``: cpu or
         one GPU index (Ultralytics' DDP would train where the step count cannot be taken)
The seeds train ``launch.runs.workers`` at a time in spawned processes (one at a time on a GPU);
each run is the one a process of its own would make.
Every variant gets the same optimiser steps: ``epochs``, ``close_mosaic`` and ``warmup_epochs``
count epochs over the real train canvases, and a variant with synthetic canvases gets
proportionally fewer epochs of each (synthaug/detector.py lists the Ultralytics defaults this
overrides and why). The model is built from its yaml: nothing is downloaded. Ultralytics is made
offline and silent first; nothing is written to ``runs/`` or the home directory.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from collections.abc import Sequence

import yaml

from synthaug import checksums
from synthaug.cli import parse_args, run
from synthaug.detector import DetectorBudget, train_detector
from synthaug.errors import DataError
from synthaug.files import write_json
from synthaug.images import atomic_dir
from synthaug.launch import in_workers
from synthaug.layout import Detection, Run, history_file
from synthaug.params import Params, load_params

RESULTS_CSV = "results.csv"  # Ultralytics' per-epoch history in its run folder

log = logging.getLogger("train_yolo")


def budget_from_params(params: Params) -> DetectorBudget:
    c = params.train_yolo
    return DetectorBudget.of(c, c.model, c.device, params.launch.runs.threads)


def train_seed(args: argparse.Namespace, params: Params, seed: int, n_real: int, n_train: int) -> dict:
    """One seed's detector: Ultralytics trains in ``--runs``/seed<k>; the weights and the budget
    (no seconds) go to ``--out``/seed<k>, its results.csv to ``--history``. Returns the seconds."""
    init = Run(args.pretrained).weights if params.train_yolo.init == "pretrained" else None
    with atomic_dir(Run.of(args.runs, seed).root) as work:
        budget = train_detector(args.data, work, budget_from_params(params), seed, n_real, n_train, init)
        seconds = budget.pop("seconds")
        with atomic_dir(Run.of(args.out, seed).root) as tmp:
            shutil.move(Run(work).weights, Run(tmp).weights)
            write_json(Run(tmp).budget, budget)
        history_file(args.history, seed).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(work / RESULTS_CSV, history_file(args.history, seed))
    log.info(
        "%s seed %d: %d optimiser steps (%d without mosaic), %d epochs over %d canvases, %.0f s",
        args.variant,
        seed,
        budget["optimizer_steps"],
        budget["steps_without_mosaic"],
        budget["epochs"],
        n_train,
        seconds,
    )
    return {"seconds": seconds, "optimizer_steps": budget["optimizer_steps"]}


def setup(argv: Sequence[str]) -> tuple[argparse.Namespace, Params, int, int]:
    """The stage's arguments and params, and the real and total train canvases of its dataset."""
    args = parse_args(__doc__, argv, "data", "pretrained", "out", "runs", "history", "timings", variant=str)
    params = load_params(args.params)
    if not args.data.is_file():
        raise DataError(f"{args.data}: missing; run `dvc repro assemble@{args.variant}`")
    det = Detection(args.data.parent)
    checksums.verify(*(f(s) for s in ("train", "val") for f in (det.images, det.labels)))
    spec = yaml.safe_load(args.data.read_text())
    n_train = len(list((args.data.parent / spec["train"]).glob("*.png")))
    return args, params, spec.get("real_train_images", n_train), n_train


def work(state: tuple, seed: int) -> dict:
    """One seed in a worker process whose ``state`` is its own :func:`setup`."""
    args, params, n_real, n_train = state
    return train_seed(args, params, seed, n_real, n_train)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, params, n_real, n_train = setup(argv)
    seeds = params.trials.yolo_seeds
    workers = min(params.launch.runs.workers, len(seeds)) if params.train_yolo.device == "cpu" else 1
    log.info(
        "%s: seeds %s on %d canvases, %d run(s) at once of %d thread(s)",
        args.variant,
        ", ".join(map(str, seeds)),
        n_train,
        workers,
        params.launch.runs.threads,
    )
    if workers == 1:
        results = [train_seed(args, params, seed, n_real, n_train) for seed in seeds]
    else:
        results = in_workers(work, [(seed,) for seed in seeds], workers, setup, (argv,))
    write_json(args.timings, {f"seed{seed}": r for seed, r in zip(seeds, results)})


if __name__ == "__main__":
    run(main)
