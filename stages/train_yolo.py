"""Stage ``train_yolo@<variant>-<seed>``: an Ultralytics YOLO detector on one variant's dataset.

Inputs:  ``--data`` (data/datasets/<variant>/det/data.yaml), ``--pretrained`` (models/yolo_pretrained:
         the class-agnostic detector every run starts from when ``train_yolo.init: pretrained``)
Outputs: ``--out`` (models/yolo/<variant>/seed<k>): Ultralytics' run files (``args.yaml``,
         ``results.csv`` — a DVC plot, ``weights/``), ``model.safetensors`` (the final EMA weights
         as a plain state dict: the model evaluate scores) and ``budget.json`` (DVC metrics: what
         really happened — epochs, optimiser steps counted on the optimiser, steps without
         mosaic, images seen, seconds)
Params:  train_yolo.* (but seeds and variants), launch.training.threads; ``device``: cpu or one
         GPU index (Ultralytics' DDP would train where the step count cannot be taken)
Every variant gets the same optimiser steps: ``epochs``, ``close_mosaic`` and ``warmup_epochs``
count epochs over the real train canvases, and a variant with synthetic canvases gets
proportionally fewer epochs of each (synthaug/detector.py lists the Ultralytics defaults this
overrides and why). The model is built from its yaml: nothing is downloaded. Ultralytics is made
offline and silent first; nothing is written to ``runs/`` or the home directory.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import yaml

from synthaug.cli import parse_args, run
from synthaug.detector import DetectorBudget, train_detector
from synthaug.errors import DataError
from synthaug.files import write_json
from synthaug.images import atomic_dir
from synthaug.layout import Run
from synthaug.params import Params, load_params

log = logging.getLogger("train_yolo")


def budget_from_params(params: Params) -> DetectorBudget:
    c = params.train_yolo
    return DetectorBudget.of(c, c.model, c.device, params.launch.training.threads)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv, "data", "pretrained", "out", variant=str, seed=int)
    params = load_params(args.params)
    if not args.data.is_file():
        raise DataError(f"{args.data}: missing; run `dvc repro assemble@{args.variant}`")
    spec = yaml.safe_load(args.data.read_text())
    n_train = len(list((args.data.parent / spec["train"]).glob("*.png")))
    n_real = spec.get("real_train_images", n_train)
    with atomic_dir(args.out) as tmp:
        init = Run(args.pretrained).weights if params.train_yolo.init == "pretrained" else None
        budget = train_detector(args.data, tmp, budget_from_params(params), args.seed, n_real, n_train, init)
        write_json(Run(tmp).budget, budget)
    log.info(
        "%s seed %d: %d optimiser steps (%d without mosaic), %d epochs over %d canvases, %.0f s",
        args.variant,
        args.seed,
        budget["optimizer_steps"],
        budget["steps_without_mosaic"],
        budget["epochs"],
        n_train,
        budget["seconds"],
    )


if __name__ == "__main__":
    run(main)
