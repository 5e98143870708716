"""Stage ``evaluate@<variant>``: every seed of a variant's ResNet and YOLO on the shared real test split.

Inputs:  ``--real`` (data/real: ``cls/test``, ``det/data.yaml`` test split, ``classes.json``),
         ``--resnet`` (models/resnet/<variant>), ``--yolo`` (models/yolo: the variant's detectors
         are ``<variant>/seed<k>`` when it is in ``trials.yolo_variants``)
Outputs: ``--out`` (metrics/eval/<variant>.json, DVC metrics): ``resnet.<k>shot``, per regime and
         seed, top-1 accuracy, macro-F1 and per-class accuracy, and means over seeds; ``yolo``: per
         seed mAP50, mAP50-95, per-class AP (Ultralytics' own validator) and the optimiser steps the
         detector really took, and means. ``--confusion`` (plots/confusion/<variant>.csv, a DVC
         confusion plot): one row per test image and seed of the largest regime, actual and predicted;
         ``machine``: the CPU, CPU capability and threads the classifiers were trained with.
Params:  trials.*, variants.<variant>.shots, train_yolo.model, train_yolo.imgsz,
         launch.training.threads
This is the only stage that reads the test split.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import yaml
from sklearn.metrics import confusion_matrix, f1_score

from synthaug import checksums
from synthaug.cli import parse_args, pin_threads, run
from synthaug.detector import load_detector, validate
from synthaug.errors import DataError
from synthaug.files import read_json, write_csv, write_json
from synthaug.layout import Real, Run, regime
from synthaug.metrics import of_model
from synthaug.params import load_params, resnet_seeds
from synthaug.resnet import load_folder, load_trained, predict

log = logging.getLogger("evaluate")


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict:
    cm = confusion_matrix(y_true, y_pred, labels=range(len(classes)))
    per_class = cm.diagonal() / np.maximum(cm.sum(1), 1)
    return {
        "accuracy": round(float((y_true == y_pred).mean()), 6),
        "macro_f1": round(
            float(f1_score(y_true, y_pred, average="macro", labels=range(len(classes)), zero_division=0)), 6
        ),
        "per_class_accuracy": {name: round(float(a), 6) for name, a in zip(classes, per_class)},
    }


def with_means(seeds: dict[str, dict], keys: Sequence[str]) -> dict:
    """The per-seed rows headed by each metric's mean over the seeds (``mean_<metric>``)."""
    return {f"mean_{k}": round(float(np.mean([s[k] for s in seeds.values()])), 6) for k in keys} | seeds


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv, "real", "resnet", "yolo", "out", "confusion", variant=str)
    params = load_params(args.params)
    pin_threads(params.launch.training.threads)  # results must not depend on the machine's cores
    real = Real(args.real)
    checksums.verify(*real.folders("test"))
    classes = real.classes()
    x, y = load_folder(real.cls("test"), classes)
    if not len(x):
        raise DataError(f"{real.cls('test')}: no test images; run `dvc repro prepare`")
    result: dict = {"resnet": {}, "yolo": {}}
    confusion_rows = []
    for shots in params.variants[args.variant].shots or params.trials.shots:  # the regimes it trained in
        runs = result["resnet"].setdefault(regime(shots), {})
        for seed in resnet_seeds(params, args.variant, shots):
            net, config = load_trained(Run.of(args.resnet, seed, regime(shots)).root)
            result.setdefault("machine", config.get("machine"))  # where the classifiers were trained
            pred = predict(net, x)[0].argmax(1).numpy()
            runs[f"seed{seed}"] = classification_metrics(y.numpy(), pred, classes)
            if shots == params.trials.shots[-1]:
                confusion_rows += [
                    {"seed": seed, "actual": classes[a], "predicted": classes[p]} for a, p in zip(y.tolist(), pred)
                ]
        result["resnet"][regime(shots)] = with_means(runs, of_model("resnet"))
    data_yaml = real.det.yaml
    names = yaml.safe_load(data_yaml.read_text())["names"]
    detector_seeds = params.trials.yolo_seeds if args.variant in params.trials.yolo_variants else ()
    for seed in detector_seeds:
        run_dir = Run.of(args.yolo, seed, args.variant)
        yolo = load_detector(run_dir.root, params.train_yolo.model, names)
        m = validate(yolo, data_yaml, "test", params.train_yolo.imgsz)
        ap50 = dict(zip(m.box.ap_class_index.tolist(), m.box.ap50.tolist()))
        ap = dict(zip(m.box.ap_class_index.tolist(), m.box.ap.tolist()))
        result["yolo"][f"seed{seed}"] = {
            "mAP50": round(float(m.box.map50), 6),
            "mAP50-95": round(float(m.box.map), 6),
            "per_class_AP50": {names[k]: round(float(ap50.get(k, 0.0)), 6) for k in sorted(names)},
            "per_class_AP50-95": {names[k]: round(float(ap.get(k, 0.0)), 6) for k in sorted(names)},
            "optimizer_steps": read_json(run_dir.budget)["optimizer_steps"],
        }
    if result["yolo"]:
        result["yolo"] = with_means(result["yolo"], of_model("yolo"))
    write_json(args.out, result)
    write_csv(args.confusion, confusion_rows, ["seed", "actual", "predicted"])
    log.info(
        "%s: resnet accuracy %s; yolo mAP50 %s",
        args.variant,
        ", ".join(f"{r} {m['mean_accuracy']:.4f}" for r, m in result["resnet"].items()),
        result["yolo"].get("mean_mAP50", "(no detector)"),
    )


if __name__ == "__main__":
    run(main)
