"""Stage ``assemble@<variant>``: the training sets of one variant (real + its synthetic source).

Inputs:  ``--real`` (data/real), ``--synthetic`` (data/synthetic/<source>; ``none`` for the baseline),
         ``--judge`` (models/judge: the real-data classifier the filter asks)
Outputs: ``--out`` (data/datasets/<variant>): ``cls/{train,synthetic,val}/<class>/*.png``, ImageFolders
         (the trainer mixes ``synthetic`` into each batch at the ratio); ``det/``, an Ultralytics dataset:
         real train canvases plus round(ratio × real) synthetic ones, real val; ``variant.json``. No test
         split: only evaluate reads it. Files are hard links where possible. ``--metrics``
         (metrics/assemble/<variant>.json): counts, synthetic images kept/dropped per class, the
         dataset's ``content_md5`` (synthaug.checksums.digest of its folders' MD5SUMS).
Params:  seed, data.image_size, data.channels, variants.<variant> (``per_class``: the first so many per
         class), assemble.*, filter.min_confidence,
         prepare.det.min_object_size/max_object_size/max_iou, launch.training.threads (the filter's judge)
Synthetic images of any size and mode become dataset images as real ones did in prepare; the judge's
filter drops those it gives less than ``filter.min_confidence`` of their class. Detection canvases are
X-Paste (synthaug/xpaste.py) for txt2img and the real pool — the real reference, assembled exactly like
txt2img — and img2img's regenerated canvases, with their kept boxes, for img2img.
"""

from __future__ import annotations

import argparse
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

from synthaug import checksums
from synthaug.cli import parse_args, pin_threads, run
from synthaug.errors import DataError
from synthaug.files import write_json, write_text
from synthaug.images import add_cls_image, atomic_dir, image_folder, link, link_tree
from synthaug.layout import Dataset, Detection, Real, Source, label_of
from synthaug.params import Params, load_params
from synthaug.quality import judge_filter
from synthaug.xpaste import xpaste

log = logging.getLogger("assemble")
SPLITS = ("train", "val")  # never test: only evaluate reads it
SKIP = {checksums.NAME}  # data/real's stay behind: the dataset's folders get their own (det train gains canvases)


def synthetic_images(args: argparse.Namespace, params: Params, classes: list[str]) -> tuple[list, dict]:
    """The variant's synthetic classification images (file, class) the judge's filter keeps, and its
    counts; a missing source or an empty result is one error line."""
    variant, root = params.variants[args.variant], Source(args.synthetic).cls
    if variant.source != "none":  # none: nothing to read (dvc.yaml's dep is its tracked MD5SUMS)
        if not Source(args.synthetic).manifest.exists():
            raise DataError(f"{args.synthetic}: not generated yet; run `dvc repro` for {variant.source}")
        checksums.verify(args.synthetic)
    for name in classes:
        if not any((Real(args.real).cls("train") / name).glob("*.png")):
            raise DataError(f"{Real(args.real).cls('train') / name}: class has no images; every class needs some")
    synthetic = image_folder(root, classes) if variant.source != "none" else []
    wanted = variant.source != "none" and variant.ratio > 0
    if wanted and not synthetic:
        raise DataError(f"{root}: no synthetic classification images for variant {args.variant}")
    fit = (params.data.image_size, params.data.channels)
    synthetic, filtered = judge_filter(synthetic, classes, args.judge, params.filter.min_confidence, fit)
    if variant.per_class is not None:  # the first per class: a smaller count is a subset of a larger one
        synthetic = [
            item for k in range(len(classes)) for item in [s for s in synthetic if s[1] == k][: variant.per_class]
        ]
    if wanted and not synthetic:
        raise DataError(
            f"{root}: the filter dropped every synthetic image; lower filter.min_confidence "
            f"({params.filter.min_confidence:g})"
        )
    return synthetic, filtered


def synthetic_canvases(
    args: argparse.Namespace, params: Params, synthetic: list, real_canvases: list[Path], det: Detection
) -> int:
    """Add round(ratio × real) synthetic train canvases to ``det``: X-Paste for txt2img and the real
    pool, the regenerated canvases for img2img (cycled when the ratio asks for more); their count."""
    variant = params.variants[args.variant]
    kind, n_syn = variant.source.split("/")[0], round(variant.ratio * len(real_canvases))
    rng = np.random.default_rng([params.seed, 7])
    if kind in ("txt2img", "real") and n_syn:
        xpaste(real_canvases, synthetic, n_syn, params.assemble, params.prepare.det, rng, det)
    elif kind == "img2img" and n_syn:
        made = Source(args.synthetic).det.canvases()
        if not made:
            raise DataError(
                f"{Source(args.synthetic).det.root}: no detection variants (img2img.det is false?); "
                f"set variants.{args.variant}.ratio or enable img2img.det"
            )
        order = rng.permutation(len(made))
        for i in range(n_syn):
            f = made[order[i % len(made)]]
            link(f, det.images("train") / f"i2i_{i:05d}_{f.name}")
            link(label_of(f), det.labels("train") / f"i2i_{i:05d}_{f.stem}.txt")
    return n_syn


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv, "real", "synthetic", "judge", "out", "metrics", variant=str)
    params = load_params(args.params)
    if params.filter.min_confidence > 0:  # the judge runs: its scores must not depend on the machine's cores
        pin_threads(params.launch.training.threads)
    if args.variant not in params.variants:
        raise DataError(f"--variant {args.variant}: no variants.{args.variant} in {args.params}")
    variant, real = params.variants[args.variant], Real(args.real)
    checksums.verify(*real.folders("train"), *real.folders("val"))
    classes = real.classes()
    synthetic, filtered = synthetic_images(args, params, classes)
    with atomic_dir(args.out) as tmp:
        out = Dataset(tmp)
        counts = {f"cls_{s}": link_tree(real.cls(s), out.cls(s), skip=SKIP) for s in SPLITS}
        for f, k in synthetic:
            add_cls_image(f, out.cls("synthetic") / classes[k] / f.name, params.data.image_size, params.data.channels)
        counts["cls_synthetic"] = len(synthetic)
        for split in SPLITS:
            counts[f"det_{split}"] = link_tree(real.det.images(split), out.det.images(split), skip=SKIP)
            link_tree(real.det.labels(split), out.det.labels(split), skip=SKIP)
        real_canvases = real.det.canvases("train")
        counts["det_synthetic"] = synthetic_canvases(args, params, synthetic, real_canvases, out.det)
        spec = {s: out.det.images(s).relative_to(out.det.root).as_posix() for s in SPLITS}
        spec |= {"names": dict(enumerate(classes)), "real_train_images": len(real_canvases)}
        write_text(out.det.yaml, yaml.safe_dump(spec, sort_keys=False))
        write_json(out.variant_file, {"variant": args.variant, **vars(variant), "counts": counts})
        shutil.copy2(real.classes_file, out.classes_file)
        folders = out.split_folders()
        for folder in folders:
            checksums.write(folder)  # the baseline's empty cls/synthetic too: the trainer depends on it
        content = checksums.digest(*folders)  # the report depends on the metrics, not on the images
    write_json(args.metrics, {"counts": counts, "filter": filtered, "content_md5": content})
    log.info("%s: %s; filter kept %d, dropped %d", args.variant, counts, filtered["kept"], filtered["dropped"])


if __name__ == "__main__":
    run(main)
