"""Stage ``pretrain_yolo``: a class-agnostic digit detector that every train_yolo run starts from.

Inputs:  ``--data`` (data/real/det/data.yaml: its ``pool`` canvases, made of the pool's digits —
         the images the builtin generator learned from — never train/val/test digits)
Outputs: ``--out`` (models/yolo_pretrained, committed to git like models/builtin, so a fresh
         clone skips this stage): ``model.safetensors`` (final EMA weights) and ``budget.json``
         (epochs, optimiser steps); ``--timings`` (timings/pretrain_yolo.json): seconds (apart, as
         train_yolo depends on ``--out``); Ultralytics' run files stay in a temp folder
Params:  pretrain_yolo.*, train_yolo.model, launch.training.threads
It stands in for the COCO weights a real user fine-tunes from: it learns where digits are
(``single_cls``: one class, "object"), not which digit they are, so the class head starts fresh
in every variant and the comparison between variants is untouched — they all start here.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import yaml

from synthaug import checksums
from synthaug.cli import parse_args, run
from synthaug.detector import DetectorBudget, train_detector
from synthaug.errors import DataError
from synthaug.files import write_json, write_text
from synthaug.images import atomic_dir
from synthaug.layout import Detection, Run
from synthaug.params import load_params

log = logging.getLogger("pretrain_yolo")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv, "data", "out", "timings")
    params = load_params(args.params)
    c = params.pretrain_yolo
    if not args.data.is_file():
        raise DataError(f"{args.data}: missing; run `dvc repro prepare`")
    det = Detection(args.data.parent)
    checksums.verify(*(f(s) for s in ("pool", "val") for f in (det.images, det.labels)))
    spec = yaml.safe_load(args.data.read_text())
    root = args.data.parent.resolve()
    pool_dir = spec.get("pool") or str(Detection(Path()).images("pool"))
    pool = sorted((root / pool_dir).glob("*.png"))
    if not pool:
        raise DataError(f"{root / pool_dir}: no canvases; run `dvc repro prepare`")
    budget = DetectorBudget.of(c, params.train_yolo.model, params.train_yolo.device, params.launch.training.threads)
    work = Path(tempfile.mkdtemp(prefix="synthaug-pretrain-yolo-"))
    try:
        data = Detection(work).yaml
        write_text(
            data,
            yaml.safe_dump(
                {"path": str(root), "train": pool_dir, "val": spec["val"], "names": spec["names"]}, sort_keys=False
            ),
        )
        (work / "run").mkdir()
        result = train_detector(data, work / "run", budget, params.seed, len(pool), len(pool), single_cls=True)
        with atomic_dir(args.out) as tmp:
            shutil.copy2(Run(work / "run").weights, Run(tmp).weights)
            seconds = result.pop("seconds")  # wall-clock: train_yolo depends on --out, so it goes apart
            write_json(Run(tmp).budget, result | {"model": budget.model})
        write_json(args.timings, {"seconds": seconds})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("%d optimiser steps over %d pool canvases in %.0f s", result["optimizer_steps"], len(pool), seconds)


if __name__ == "__main__":
    run(main)
