"""Stage ``survival@<strength>``: do img2img's kept detection boxes still hold their digits?

Inputs:  ``--synthetic`` (data/synthetic/img2img/<strength>: its ``det_val``, img2img versions of the
         real *val* canvases, with their kept labels), ``--detector`` (models/yolo/baseline/seed<k>: the
         baseline detector), ``--real`` (data/real: ``det/{images,labels}/val``, ``classes.json``)
Outputs: ``--out`` (metrics/survival/<strength>.json, DVC metrics): ``box_survival`` — share of
         kept boxes the detector re-finds (same class, IoU >= quality.box_iou, confidence >=
         quality.detector_conf) — next to ``box_recall_real``, the same detector on the real val
         canvases they came from: survival is only meaningful relative to it. Both are held out:
         the detector never trained on the val canvases (nor on their img2img versions).
Params:  train_yolo.model, train_yolo.imgsz, quality.*, launch.training.threads
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from synthaug import checksums
from synthaug.cli import parse_args, pin_threads, run
from synthaug.detector import detect, load_detector
from synthaug.errors import DataError
from synthaug.files import write_json
from synthaug.images import read_yolo_boxes
from synthaug.layout import Real, Source, label_of
from synthaug.params import load_params
from synthaug.quality import refound

log = logging.getLogger("survival")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv, "synthetic", "detector", "real", "out")
    params = load_params(args.params)
    pin_threads(params.launch.training.threads)  # results must not depend on the machine's cores
    regenerated, real = Source(args.synthetic).det_val, Real(args.real)
    if not regenerated.images().is_dir():
        raise DataError(f"{regenerated.images()}: no img2img detection canvases; set img2img.det: true")
    checksums.verify(real.det.images("val"), real.det.labels("val"), args.synthetic)
    names = dict(enumerate(real.classes()))
    yolo = load_detector(args.detector, params.train_yolo.model, names)
    result = {}
    for key, files in (("box_survival", regenerated.canvases()), ("box_recall_real", real.det.canvases("val"))):
        truth = [read_yolo_boxes(label_of(f)) for f in files]
        found = detect(yolo, files, params.train_yolo.imgsz, params.quality.detector_conf)
        total = sum(map(len, truth))
        hits = sum(refound(t, d, params.quality.box_iou) for t, d in zip(truth, found))
        result[key] = round(hits / total, 6) if total else 0.0
        result[f"{key}_boxes"] = total
    write_json(args.out, result)
    log.info("%s: %s", args.synthetic, result)


if __name__ == "__main__":
    run(main)
