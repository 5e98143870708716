"""Stage ``judge``: the classifier trained on real data that scores synthetic images.

Inputs:  ``--train`` (data/real/cls/pool: real digits disjoint from train/val/test), ``--val``
         (data/real/cls/val), ``--classes`` (data/real/classes.json)
Outputs: ``--out`` (models/judge, committed to git like models/builtin, so every machine scores with
         the same network; ``dvc repro -f judge`` remakes it): ``model.safetensors`` (float16: half
         the bytes in git; it computes in float32), ``config.json``, ``history.csv`` (a DVC plot)
Params:  seed, data.image_size, judge.*, launch.training.threads
It plays the role of the pretrained Inception network of FID or the CLIP model of synthetic-data
filtering: conditional accuracy, the Fréchet distance (in its penultimate-layer features) and
assemble's ``filter.min_confidence`` all use it. Trained with the same loop as train_resnet.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from synthaug import checksums
from synthaug.cli import parse_args, pin_threads, run
from synthaug.errors import DataError
from synthaug.layout import read_classes
from synthaug.params import load_params
from synthaug.resnet import build_resnet, load_folder, save_trained, train

log = logging.getLogger("judge")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv, "train", "val", "classes", "out")
    params = load_params(args.params)
    pin_threads(params.launch.training.threads)  # results must not depend on the machine's cores
    cfg = params.judge
    classes = read_classes(args.classes)
    torch.manual_seed(params.seed)
    torch.use_deterministic_algorithms(True)
    checksums.verify(args.train, args.val)
    real, val = load_folder(args.train, classes), load_folder(args.val, classes)
    if not len(real[0]) or not len(val[0]):
        raise DataError(f"{args.train} or {args.val}: no images; run `dvc repro prepare`")
    net = build_resnet(cfg, len(classes))
    log.info("judge: %d real images, %d steps of %d", len(real[0]), cfg.steps, cfg.batch_size)
    empty = (real[0][:0], real[1][:0])
    history = train(net, real, empty, val, 0.0, cfg, params.seed, desc="judge")
    save_trained(args.out, net, cfg, history, dtype=torch.float16, classes=classes, image_size=params.data.image_size)
    log.info("judge val accuracy %.3f", history[-1]["val_accuracy"])


if __name__ == "__main__":
    run(main)
