"""Stage ``assemble@<variant>``: the training sets of one variant (real + its synthetic source).

Inputs:  ``--real`` (data/real), ``--synthetic`` (data/synthetic/<source>; data/synthetic/none is
         the empty source of the baseline)
Outputs: ``--out`` (data/datasets/<variant>):
         ``cls/{train,synthetic,val,test}/<class>/*.png`` — ImageFolders; real val/test untouched
         and shared by every variant; the trainer mixes ``synthetic`` into each batch at the ratio;
         ``det/`` — an Ultralytics dataset (``data.yaml``): real train canvases plus
         round(ratio × real) synthetic canvases, real val/test; ``variant.json`` (source, ratio, counts).
         Files are hard links where the filesystem allows, else copies; order is deterministic.
Params:  seed, variants.<variant>, assemble.*, prepare.det.min_object_size/max_object_size/max_iou
Detection from txt2img is X-Paste: each synthetic digit is cut out with a mask (pixels whose
distance from the image's border colour exceeds ``assemble.paste_threshold`` of the maximum) and
pasted, in an ink colour contrasting the spot, onto a real train canvas at a free place, with its
exact ink box. Detection from img2img uses the regenerated canvases with their kept boxes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from synthaug.cli import run
from synthaug.compose import border_distance, place_digits
from synthaug.errors import DataError
from synthaug.images import atomic_dir, format_yolo_line, image_folder, read_yolo_boxes, save_png
from synthaug.params import load_params

log = logging.getLogger("assemble")
DET_SPLITS = ("train", "val", "test")


def link(src: Path, dst: Path) -> None:
    """Hard link ``src`` at ``dst`` (copy across filesystems)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def link_tree(src: Path, dst: Path) -> int:
    files = sorted(p for p in src.rglob("*") if p.is_file())
    for f in files:
        link(f, dst / f.relative_to(src))
    return len(files)


def cutout(path: Path, threshold: float) -> np.ndarray:
    """White-on-black uint8 mask of the object in a generated image (see the module docstring)."""
    dist, _ = border_distance(np.asarray(Image.open(path).convert("RGB")))
    mask = np.where(dist >= threshold * max(dist.max(), 1e-6), dist / max(dist.max(), 1e-6), 0.0)
    return (mask * 255).round().astype(np.uint8)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, required=True)
    ap.add_argument("--variant", required=True)
    ap.add_argument("--real", type=Path, required=True)
    ap.add_argument("--synthetic", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    params = load_params(args.params)
    if args.variant not in params.variants:
        raise DataError(f"--variant {args.variant}: no variants.{args.variant} in {args.params}")
    variant, a, det_cfg = params.variants[args.variant], params.assemble, params.prepare.det
    classes = json.loads((args.real / "classes.json").read_text())
    kind = variant.source.split("/")[0]
    if variant.source != "none" and not (args.synthetic / ("manifest.jsonl" if kind == "txt2img" else "cls")).exists():
        raise DataError(f"{args.synthetic}: not generated yet; run `dvc repro` for {variant.source}")
    for name in classes:
        if not any((args.real / "cls" / "train" / name).glob("*.png")):
            raise DataError(f"{args.real}/cls/train/{name}: class has no images; every class needs real examples")
    syn_cls_root = args.synthetic / ("cls" if kind == "img2img" else "")
    synthetic = image_folder(syn_cls_root, classes) if variant.source != "none" else []
    if variant.source != "none" and variant.ratio > 0 and not synthetic:
        raise DataError(f"{syn_cls_root}: no synthetic classification images for variant {args.variant}")
    rng = np.random.default_rng([params.seed, 7])
    with atomic_dir(args.out) as tmp:
        counts = {f"cls_{s}": link_tree(args.real / "cls" / s, tmp / "cls" / s) for s in ("train", "val", "test")}
        for f, k in synthetic:
            link(f, tmp / "cls" / "synthetic" / classes[k] / f.name)
        counts["cls_synthetic"] = len(synthetic)
        real_det = args.real / "det"
        for split in DET_SPLITS:
            counts[f"det_{split}"] = link_tree(real_det / "images" / split, tmp / "det" / "images" / split)
            link_tree(real_det / "labels" / split, tmp / "det" / "labels" / split)
        real_canvases = sorted((real_det / "images" / "train").glob("*.png"))
        n_syn = round(variant.ratio * len(real_canvases))
        if kind == "txt2img" and n_syn:
            masks = np.stack([cutout(f, a.paste_threshold) for f, _ in synthetic])
            labels = np.array([k for _, k in synthetic])
            for i in range(n_syn):
                src = real_canvases[i % len(real_canvases)]
                canvas = np.asarray(Image.open(src).convert("RGB"), dtype=np.float64).copy()
                size = canvas.shape[0]
                old = read_yolo_boxes(real_det / "labels" / "train" / f"{src.stem}.txt")
                got_classes, got_boxes = place_digits(
                    canvas, masks, labels, a.paste_per_image, det_cfg.min_object_size, det_cfg.max_object_size,
                    det_cfg.max_iou, rng, boxes=[tuple(v * size for v in b) for _, b in old])
                stem = f"xpaste_{i:05d}"
                save_png(np.clip(np.rint(canvas), 0, 255).astype(np.uint8), tmp / "det/images/train" / f"{stem}.png")
                lines = [format_yolo_line(c, b) for c, b in old]
                lines += [format_yolo_line(c, [v / size for v in b]) for c, b in zip(got_classes, got_boxes)]
                (tmp / "det/labels/train" / f"{stem}.txt").write_text("".join(x + "\n" for x in lines))
        elif kind == "img2img" and n_syn:
            made = sorted((args.synthetic / "det" / "images").glob("*.png"))
            if not made:
                raise DataError(f"{args.synthetic}/det: no detection variants (img2img.det is false?); "
                                f"set variants.{args.variant}.ratio or enable img2img.det")
            order = rng.permutation(len(made))
            for i in range(n_syn):  # cycles through the variants when the ratio asks for more
                f = made[order[i % len(made)]]
                stem = f"i2i_{i:05d}_{f.stem}"
                link(f, tmp / "det/images/train" / f"{stem}.png")
                link(args.synthetic / "det" / "labels" / f"{f.stem}.txt", tmp / "det/labels/train" / f"{stem}.txt")
        counts["det_synthetic"] = n_syn
        spec = {s: f"images/{s}" for s in DET_SPLITS} | {"names": dict(enumerate(classes))}
        (tmp / "det" / "data.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        info = {"variant": args.variant, "source": variant.source, "ratio": variant.ratio, "counts": counts}
        (tmp / "variant.json").write_text(json.dumps(info, indent=2) + "\n")
        shutil.copy2(args.real / "classes.json", tmp / "classes.json")
    log.info("%s: %s", args.variant, counts)


if __name__ == "__main__":
    run(main)
