"""Stage ``assemble@<variant>``: the training sets of one variant (real + its synthetic source).

Inputs:  ``--real`` (data/real), ``--synthetic`` (data/synthetic/<source>; data/synthetic/none is
         the empty source of the baseline), ``--judge`` (models/judge: the real-data classifier)
Outputs: ``--out`` (data/datasets/<variant>):
         ``cls/{train,synthetic,val}/<class>/*.png`` — ImageFolders; real val untouched and shared
         by every variant; the trainer mixes ``synthetic`` into each batch at the ratio;
         ``det/`` — an Ultralytics dataset (``data.yaml``): real train canvases plus
         round(ratio × real) synthetic canvases, real val; ``variant.json`` (source, ratio, counts).
         No test split: only the evaluate stage reads it, from data/real.
         Files are hard links where the filesystem allows, else copies; order is deterministic.
         ``--metrics`` (metrics/assemble/<variant>.json): synthetic images kept/dropped per class.
Params:  seed, data.image_size, data.channels, variants.<variant>, assemble.*, filter.min_confidence,
         prepare.det.min_object_size/max_object_size/max_iou, launch.training.threads (the filter's judge)
Synthetic images of any size and mode (a checkpoint samples at its own size: 512 px for SD 1.5)
become classification images exactly as real ones did in prepare: letterboxed to
``data.image_size``, in ``data.channels``; X-Paste cut-outs are scaled to the largest size a digit
is pasted at on the canvases.
The filter drops synthetic images the judge gives less than ``filter.min_confidence`` probability
of their intended class (the CLIP-filtering step of synthetic-data papers); the rest, cutouts
included, come from the kept images only. img2img detection canvases are not filtered.
A ``real/pool`` source (stage real_pool: real pool digits in the txt2img layout) is assembled
exactly like txt2img: it is the real-data reference for every synthetic variant.
Detection from txt2img (and the real pool) is X-Paste: each synthetic digit is cut out with a mask
(pixels whose distance from the image's border colour exceeds ``assemble.paste_threshold`` of the
maximum) and pasted, in an ink colour contrasting the spot, onto a real train canvas at a free
place, with its exact ink box. Detection from img2img uses the regenerated canvases with their kept
boxes.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from synthaug.cli import pin_threads, run
from synthaug.errors import DataError
from synthaug.files import write_json
from synthaug.images import (
    atomic_dir,
    cls_image,
    image_folder,
    link,
    save_png,
)
from synthaug.params import Params, load_params
from synthaug.quality import judge_filter
from synthaug.xpaste import cutout, xpaste

log = logging.getLogger("assemble")
SPLITS = ("train", "val")  # never test: only evaluate reads it


def link_tree(src: Path, dst: Path) -> int:
    files = sorted(p for p in src.rglob("*") if p.is_file())
    for f in files:
        link(f, dst / f.relative_to(src))
    return len(files)


def add_cls_image(src: Path, dst: Path, size: int, channels: int) -> None:
    """A synthetic image into a classification set: linked when it already is a dataset image
    (``size`` px, the data's mode), else converted as prepare converts real ones (:func:`cls_image`).
    The original stays in data/synthetic for the galleries."""
    with Image.open(src) as img:
        if img.size == (size, size) and img.mode == ("L" if channels == 1 else "RGB"):
            link(src, dst)
        else:
            save_png(cls_image(img, size, channels), dst.with_suffix(".png"))


def synthetic_images(args: argparse.Namespace, params: Params, classes: list[str]) -> tuple[list, dict]:
    """The variant's synthetic classification images (file, class) the judge's filter keeps, and its
    counts; a missing source or an empty result is one error line."""
    variant = params.variants[args.variant]
    kind = variant.source.split("/")[0]
    # txt2img and the real pool share one layout (<class>/*.png + manifest.jsonl); img2img has cls/ and det/
    if variant.source != "none" and not (args.synthetic / ("cls" if kind == "img2img" else "manifest.jsonl")).exists():
        raise DataError(f"{args.synthetic}: not generated yet; run `dvc repro` for {variant.source}")
    for name in classes:
        if not any((args.real / "cls" / "train" / name).glob("*.png")):
            raise DataError(f"{args.real}/cls/train/{name}: class has no images; every class needs real examples")
    root = args.synthetic / ("cls" if kind == "img2img" else "")
    synthetic = image_folder(root, classes) if variant.source != "none" else []
    wanted = variant.source != "none" and variant.ratio > 0
    if wanted and not synthetic:
        raise DataError(f"{root}: no synthetic classification images for variant {args.variant}")
    fit = (params.data.image_size, params.data.channels)
    synthetic, filtered = judge_filter(synthetic, classes, args.judge, params.filter.min_confidence, fit)
    if wanted and not synthetic:
        raise DataError(
            f"{root}: the filter dropped every synthetic image; lower filter.min_confidence "
            f"({params.filter.min_confidence:g})"
        )
    return synthetic, filtered


def synthetic_canvases(
    args: argparse.Namespace, params: Params, synthetic: list, real_canvases: list[Path], det: Path
) -> int:
    """Add round(ratio × real) synthetic train canvases to ``det``: X-Paste for txt2img and the real
    pool, the regenerated canvases for img2img (cycled when the ratio asks for more); their count."""
    variant, a, det_cfg = params.variants[args.variant], params.assemble, params.prepare.det
    kind, n_syn = variant.source.split("/")[0], round(variant.ratio * len(real_canvases))
    rng = np.random.default_rng([params.seed, 7])
    if kind in ("txt2img", "real") and n_syn:
        with Image.open(real_canvases[0]) as first:
            max_side = max(8, round(det_cfg.max_object_size * first.width))  # as place_digits sizes them
        cutouts = [cutout(f, a.paste_threshold, max_side) for f, _ in synthetic]
        xpaste(
            real_canvases,
            args.real / "det" / "labels" / "train",
            cutouts,
            np.array([k for _, k in synthetic]),
            n_syn,
            a.paste_per_image,
            det_cfg,
            rng,
            det / "images" / "train",
            det / "labels" / "train",
        )
    elif kind == "img2img" and n_syn:
        made = sorted((args.synthetic / "det" / "images").glob("*.png"))
        if not made:
            raise DataError(
                f"{args.synthetic}/det: no detection variants (img2img.det is false?); "
                f"set variants.{args.variant}.ratio or enable img2img.det"
            )
        order = rng.permutation(len(made))
        for i in range(n_syn):
            f = made[order[i % len(made)]]
            stem = f"i2i_{i:05d}_{f.stem}"
            link(f, det / "images" / "train" / f"{stem}.png")
            link(args.synthetic / "det" / "labels" / f"{f.stem}.txt", det / "labels" / "train" / f"{stem}.txt")
    return n_syn


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("params", "real", "synthetic", "judge", "out", "metrics"):
        ap.add_argument(f"--{name}", type=Path, required=True)
    ap.add_argument("--variant", required=True)
    args = ap.parse_args(argv)
    params = load_params(args.params)
    pin_threads(params.launch.training.threads)  # results must not depend on the machine's cores
    if args.variant not in params.variants:
        raise DataError(f"--variant {args.variant}: no variants.{args.variant} in {args.params}")
    variant = params.variants[args.variant]
    classes = json.loads((args.real / "classes.json").read_text())
    synthetic, filtered = synthetic_images(args, params, classes)
    real_det = args.real / "det"
    with atomic_dir(args.out) as tmp:
        counts = {f"cls_{s}": link_tree(args.real / "cls" / s, tmp / "cls" / s) for s in SPLITS}
        for f, k in synthetic:
            add_cls_image(
                f, tmp / "cls" / "synthetic" / classes[k] / f.name, params.data.image_size, params.data.channels
            )
        counts["cls_synthetic"] = len(synthetic)
        for split in SPLITS:
            counts[f"det_{split}"] = link_tree(real_det / "images" / split, tmp / "det" / "images" / split)
            link_tree(real_det / "labels" / split, tmp / "det" / "labels" / split)
        real_canvases = sorted((real_det / "images" / "train").glob("*.png"))
        counts["det_synthetic"] = synthetic_canvases(args, params, synthetic, real_canvases, tmp / "det")
        spec = {s: f"images/{s}" for s in SPLITS} | {
            "names": dict(enumerate(classes)),
            "real_train_images": len(real_canvases),
        }
        (tmp / "det" / "data.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        write_json(
            tmp / "variant.json",
            {"variant": args.variant, "source": variant.source, "ratio": variant.ratio, "counts": counts},
        )
        shutil.copy2(args.real / "classes.json", tmp / "classes.json")
    write_json(args.metrics, {"counts": counts, "filter": filtered})
    log.info("%s: %s; filter kept %d, dropped %d", args.variant, counts, filtered["kept"], filtered["dropped"])


if __name__ == "__main__":
    run(main)
