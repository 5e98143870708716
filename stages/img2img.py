"""Stage ``img2img@<strength>``: variants of the real low-data train set at one SDEdit strength.

Inputs:  ``--real`` (data/real): ``cls/train`` images and ``det/{images,labels}/{train,val}``
         canvases; the model (``generate.model``, ``builtin`` = ``--builtin``)
Outputs: ``--out`` (data/synthetic/img2img/<strength>): ``cls/<class>/<source>-v<k>.png`` (label kept)
         and ``det/images|labels/<source>-v<k>.*`` (boxes kept) for training; ``det_val/`` — one
         variant of each real *val* canvas, never trained on, for the survival stage's held-out
         measurement; each part with ``manifest.jsonl`` (source file, strength, seed, class or
         boxes); ``--metrics``: measured seconds per image.
         Resumable, and shared out over launched processes, like txt2img.
Params:  seed, data.image_size, data.channels, data.det_image_size, generate.*, img2img.* (but
         strengths), prompts.templates, prompts.negative_prompt, launch.sampling.threads
Inputs of any size are letterboxed to the model's size and the result resized back. Detection with
a text-conditioned model sends the whole canvas through img2img; with the builtin class model each
box's crop is turned into a digit mask, regenerated in place conditioned on the box's class and
pasted back in the original ink colour over the erased old digit.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from synthaug.cli import run
from synthaug.compose import border_distance
from synthaug.diffusion import Backend, backend_for, make_scheduler
from synthaug.errors import DataError
from synthaug.images import image_folder, letterbox, read_yolo_boxes, save_png
from synthaug.launch import process_group
from synthaug.params import Params, load_params
from synthaug.resume import (
    BatchJournal,
    declared_params,
    digest_files,
    model_digest,
    run_batches,
    stable_seed,
    write_timing,
)

log = logging.getLogger("img2img")
PARAMS = (
    "seed",
    "data.image_size",
    "data.channels",
    "data.det_image_size",
    "generate",
    "img2img.scheduler",
    "img2img.scheduler_options",
    "img2img.variants_per_source",
    "img2img.det",
    "prompts.templates",
    "prompts.negative_prompt",
    "launch.sampling.threads",
)  # as dvc.yaml declares them
CELL = 28 / 20  # an MNIST digit's ink spans ~20 of its 28 px cell: crop that much context around a box


def to_model(image: Image.Image, backend: Backend) -> np.ndarray:
    mode = "L" if backend.channels == 1 else "RGB"
    return np.asarray(letterbox(image, backend.image_size, mode, 0)[0])


def from_model(image: np.ndarray, size: int, mode: str) -> Image.Image:
    return Image.fromarray(image).convert(mode).resize((size, size), Image.Resampling.BICUBIC)


def digit_mask(crop: np.ndarray, own: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mask in [0, 1], background colour, ink colour) of an RGB crop around one object: the
    background is the median colour of the crop's border, the mask the normalised distance from it,
    the ink the median colour of the strongest mask pixels among ``own`` (a boolean map of the
    object's box minus its neighbours' boxes, since the crop may reach into another digit)."""
    dist, bg = border_distance(crop)
    scale = max(np.percentile(dist, 99), 1e-6)
    mask = np.clip(dist / scale, 0, 1)
    inside = mask[own]
    strong = own & (mask >= max(0.5, np.percentile(inside, 90))) if inside.size else own
    ink = np.median(crop[strong], axis=0) if strong.any() else 255 - bg
    return mask, bg, ink


def crop_square(box: Sequence[float], size: int) -> tuple[int, int, int]:
    """(x, y, side) of a square around a pixel xyxy box with digit-cell context, inside the canvas."""
    x0, y0, x1, y1 = box
    side = int(min(size, max(8, round(max(x1 - x0, y1 - y0) * CELL))))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    x = int(np.clip(round(cx - side / 2), 0, size - side))
    y = int(np.clip(round(cy - side / 2), 0, size - side))
    return x, y, side


def box_map(box: Sequence[float], size: int) -> np.ndarray:
    """Boolean ``size``×``size`` map of a normalised xyxy box."""
    m = np.zeros((size, size), bool)
    x0, y0, x1, y1 = (int(round(v * size)) for v in box)
    m[y0:y1, x0:x1] = True
    return m


def prompt_record(params: Params, names: Sequence[str], seed: int, class_id: int) -> dict:
    text = params.prompts.templates[0].format(name=" and ".join(names))
    return {"class": class_id, "prompt": text, "negative_prompt": params.prompts.negative_prompt, "seed": seed}


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, required=True)
    ap.add_argument("--strength", type=float, required=True)
    ap.add_argument("--real", type=Path, required=True)
    ap.add_argument("--builtin", type=Path, required=True, help="folder of the builtin model")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--metrics", type=Path, required=True, help="sampling time (JSON)")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    g, p, d = params.generate, params.img2img, params.data
    strength = args.strength
    if not 0 < strength <= 1:
        raise DataError(f"--strength {strength}: must be in (0, 1]; check img2img.strengths")
    classes = json.loads((args.real / "classes.json").read_text())
    options = p.scheduler_options
    cls_sources = image_folder(args.real / "cls" / "train", classes)
    det_dir = args.real / "det"
    det_sources = {
        split: sorted((det_dir / "images" / split).glob("*.png")) if p.det else [] for split in ("train", "val")
    }
    if not cls_sources:
        raise DataError(f"{args.real}/cls/train: no images; run `dvc repro prepare` first")
    fingerprint = {
        "params": declared_params(params, PARAMS),
        "strength": strength,
        "real": digest_files(
            [args.real / "cls" / "train"]
            + [det_dir / kind / split for split in ("train", "val") for kind in ("images", "labels")]
        ),
        "model": model_digest(g.model, args.builtin),
    }
    group = process_group(g.device, params.launch.sampling)
    with group.main_process_first():  # only the main process may wipe a stale output
        journal = BatchJournal(args.out, fingerprint)
    backend = backend_for(g, args.builtin, group)
    make_scheduler(p.scheduler, backend.scheduler_config, options)  # fail on bad options before work
    mode = "L" if d.channels == 1 else "RGB"

    def sample(images: list[np.ndarray], records: list[dict]) -> np.ndarray:
        scheduler, step_kwargs = make_scheduler(p.scheduler, backend.scheduler_config, options)
        return backend.img2img(np.stack(images), records, scheduler, g.steps, g.guidance, step_kwargs, strength)

    cls_items = [(f, k, v) for f, k in cls_sources for v in range(p.variants_per_source)]

    def cls_work(batch: Sequence[tuple[Path, int, int]]) -> list[dict]:
        records = [
            prompt_record(params, [classes[k]], stable_seed(params.seed, "img2img", f.name, v), k) for f, k, v in batch
        ]
        out = sample([to_model(Image.open(f), backend) for f, _, _ in batch], records)
        rows = []
        for (f, k, v), rec, image in zip(batch, records, out):
            rel = f"{classes[k]}/{f.stem}-v{v}.png"
            save_png(from_model(image, d.image_size, mode), args.out / "cls" / rel)
            rows.append(
                {
                    "file": rel,
                    "source": f"cls/train/{classes[k]}/{f.name}",
                    "class": k,
                    "name": classes[k],
                    "strength": strength,
                    "seed": rec["seed"],
                }
            )
        return rows

    # val canvases (one variant each) only measure box survival on canvases no detector trained on
    det_items = {
        "det": [("train", f, v) for f in det_sources["train"] for v in range(p.variants_per_source)],
        "det_val": [("val", f, 0) for f in det_sources["val"]],
    }

    def det_seed(split: str, f: Path, *rest: int) -> int:
        return stable_seed(params.seed, "img2img-det" + ("" if split == "train" else f"-{split}"), f.name, *rest)

    def det_work(batch: Sequence[tuple[str, Path, int]]) -> list[dict]:
        canvases = [np.asarray(Image.open(f).convert("RGB")) for _, f, _ in batch]
        boxes = [read_yolo_boxes(det_dir / "labels" / split / f"{f.stem}.txt") for split, f, _ in batch]
        size = d.det_image_size
        if backend.text_conditioned:
            records = [
                prompt_record(params, sorted({classes[c] for c, _ in bx}) or ["nothing"], det_seed(split, f, v), -1)
                for (split, f, v), bx in zip(batch, boxes)
            ]
            out = sample([to_model(Image.fromarray(c), backend) for c in canvases], records)
            results = [np.asarray(from_model(o, size, "RGB")) for o in out]
        else:
            crops, records, where = [], [], []
            for i, ((split, f, v), canvas, bx) in enumerate(zip(batch, canvases, boxes)):
                for j, (c, box) in enumerate(bx):
                    x, y, side = crop_square([b * size for b in box], size)
                    own = box_map(box, size) & ~np.any(
                        [box_map(o, size) for k, (_, o) in enumerate(bx) if k != j] or [np.zeros((size, size), bool)],
                        axis=0,
                    )
                    mask, bg, ink = digit_mask(canvas[y : y + side, x : x + side], own[y : y + side, x : x + side])
                    crops.append(to_model(Image.fromarray((mask * 255).astype(np.uint8)), backend))
                    records.append(prompt_record(params, [classes[c]], det_seed(split, f, v, j), c))
                    where.append((i, x, y, side, mask, bg, ink))
            results = [c.astype(np.float64) for c in canvases]
            out = sample(crops, records) if crops else []
            for (i, x, y, side, old, bg, ink), new in zip(where, out):
                a = (np.asarray(from_model(new, side, "L"), dtype=np.float64) / 255.0)[..., None]
                region = results[i][y : y + side, x : x + side]
                erased = np.where(old[..., None] > 0.25, bg, region)  # drop the old digit, then paint the new
                results[i][y : y + side, x : x + side] = erased * (1 - a) + ink * a
            results = [np.clip(np.rint(r), 0, 255).astype(np.uint8) for r in results]
        rows = []
        for (split, f, v), image, bx in zip(batch, results, boxes):
            stem, part = f"{f.stem}-v{v}", "det" if split == "train" else f"det_{split}"
            save_png(image, args.out / part / "images" / f"{stem}.png")
            label = args.out / part / "labels" / f"{stem}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_bytes((det_dir / "labels" / split / f"{f.stem}.txt").read_bytes())
            # the seeds really used: the canvas's for a text-conditioned model, one per box for the builtin
            seeds = (
                {"seed": det_seed(split, f, v)}
                if backend.text_conditioned
                else {"box_seeds": [det_seed(split, f, v, j) for j in range(len(bx))]}
            )
            rows.append(
                {
                    "file": f"images/{stem}.png",
                    "source": f"det/images/{split}/{f.name}",
                    "strength": strength,
                    **seeds,
                    "boxes": [[c, *map(lambda t: round(t, 6), b)] for c, b in bx],
                }
            )
        return rows

    cls_keys = run_batches(journal, cls_items, g.batch_size, "cls", cls_work, f"img2img@{strength:g} cls", group)
    keys = {"cls": cls_keys} | {
        part: run_batches(journal, items, g.batch_size, part, det_work, f"img2img@{strength:g} {part}", group)
        for part, items in det_items.items()
    }
    if group.is_main_process:
        manifests = {part: args.out / part / "manifest.jsonl" for part in keys}
        totals = journal.finish({manifests[part]: k for part, k in keys.items()})
        write_timing(args.metrics, {part: totals[m] for part, m in manifests.items()}, group.num_processes)
        log.info("wrote %d images to %s", len(cls_items) + sum(map(len, det_items.values())), args.out)


if __name__ == "__main__":
    run(main)
