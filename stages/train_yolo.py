"""Stage ``train_yolo@<variant>-<seed>``: an Ultralytics YOLO detector on one variant's dataset.

Inputs:  ``--data`` (data/datasets/<variant>/det/data.yaml)
Outputs: ``--out`` (models/yolo/<variant>/seed<k>): everything Ultralytics writes for the run
         (``weights/best.pt``, ``last.pt``, ``args.yaml``, ``results.csv`` — a DVC plot) plus
         ``model.safetensors`` (the final weights as a plain state dict)
Params:  train_yolo.* (but seeds); ``device`` is Ultralytics' own: cpu, 0, or a GPU list such as
         0,1,2,3, with which Ultralytics trains under its own DDP
The model is built from its yaml (``yolov8n.yaml``, ``yolo11n.yaml``): nothing is downloaded.
Every variant gets the same optimisation budget: ``epochs`` counts epochs over the real train
canvases, and a variant with synthetic canvases gets proportionally fewer epochs, so every variant
takes the same number of optimiser steps and a gain cannot come from training longer. Ultralytics is made offline and silent first
(synthaug/offline.py); nothing is written to ``runs/`` or the home directory.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from synthaug.cli import run
from synthaug.errors import DataError
from synthaug.offline import ultralytics_offline
from synthaug.params import load_params

log = logging.getLogger("train_yolo")


def same_steps_epochs(epochs: int, n_real: int, n_train: int, batch: int) -> int:
    """Epochs over ``n_train`` canvases that take as many optimiser steps as ``epochs`` over ``n_real``."""
    return max(1, round(epochs * math.ceil(n_real / batch) / max(1, math.ceil(n_train / batch))))


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, required=True)
    ap.add_argument("--variant", required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    params = load_params(args.params)
    cfg = params.train_yolo
    if not args.data.is_file():
        raise DataError(f"{args.data}: missing; run `dvc repro assemble@{args.variant}`")
    spec = yaml.safe_load(args.data.read_text())
    n_train = len(list((args.data.parent / spec["train"]).glob("*.png")))
    epochs = same_steps_epochs(cfg.epochs, spec.get("real_train_images", n_train), n_train, cfg.batch)
    ultralytics_offline()
    import torch
    import ultralytics.utils.torch_utils as tu
    from safetensors.torch import save_file
    from ultralytics import YOLO

    tu.NUM_THREADS = os.cpu_count() or 1  # ultralytics leaves one core idle; this machine has two
    cpu = cfg.device == "cpu"
    out = args.out.resolve()
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.perf_counter()
    try:
        model = YOLO(cfg.model)
        model.train(data=str(args.data.resolve()), epochs=epochs, batch=cfg.batch, imgsz=cfg.imgsz,
                    optimizer=cfg.optimizer, lr0=cfg.lr0,
                    warmup_epochs=cfg.warmup_epochs, mosaic=cfg.mosaic, patience=cfg.patience or epochs, seed=args.seed,
                    deterministic=True, device=cfg.device, workers=0 if cpu else 4, plots=False, amp=not cpu,
                    val=True,
                    project=str(tmp.parent), name=tmp.name, exist_ok=True, verbose=False)
        state = {k: v.detach().contiguous() for k, v in model.model.state_dict().items()
                 if isinstance(v, torch.Tensor)}
        save_file(state, tmp / "model.safetensors")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    log.info("%s seed %d: %d epochs over %d canvases in %.0f s", args.variant, args.seed, epochs, n_train,
             time.perf_counter() - t0)


if __name__ == "__main__":
    run(main)
