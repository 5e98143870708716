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
from synthaug.diffusion import Backend, backend_for, make_scheduler
from synthaug.errors import DataError
from synthaug.files import write_bytes
from synthaug.images import image_folder, read_yolo_boxes, save_png
from synthaug.launch import process_group
from synthaug.params import Params, load_params
from synthaug.regenerate import from_model, regenerate_boxes, regenerate_canvases, to_model
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


class Img2Img:
    """One strength's work: the params, the classes, the model, where rows are written."""

    def __init__(self, params: Params, classes: list[str], backend: Backend, strength: float, real: Path, out: Path):
        self.params, self.classes, self.backend, self.strength = params, classes, backend, strength
        self.real, self.out = real, out

    def record(self, names: Sequence[str], seed: int, class_id: int) -> dict:
        p = self.params.prompts
        return {
            "class": class_id,
            "prompt": p.templates[0].format(name=" and ".join(names)),
            "negative_prompt": p.negative_prompt,
            "seed": seed,
        }

    def sample(self, images: list[np.ndarray], records: list[dict]) -> np.ndarray:
        p, g = self.params.img2img, self.params.generate
        scheduler, step_kwargs = make_scheduler(p.scheduler, self.backend.scheduler_config, p.scheduler_options)
        return self.backend.img2img(
            np.stack(images), records, scheduler, g.steps, g.guidance, step_kwargs, self.strength
        )

    def cls_work(self, batch: Sequence[tuple[Path, int, int]]) -> list[dict]:
        """Variants of real train images (source file, class, variant number), labels kept."""
        seed, names, d = self.params.seed, self.classes, self.params.data
        records = [self.record([names[k]], stable_seed(seed, "img2img", f.name, v), k) for f, k, v in batch]
        out = self.sample([to_model(Image.open(f), self.backend) for f, _, _ in batch], records)
        rows = []
        for (f, k, v), rec, image in zip(batch, records, out):
            rel = f"{names[k]}/{f.stem}-v{v}.png"
            save_png(from_model(image, d.image_size, "L" if d.channels == 1 else "RGB"), self.out / "cls" / rel)
            rows.append(
                {
                    "file": rel,
                    "source": f"cls/train/{names[k]}/{f.name}",
                    "class": k,
                    "name": names[k],
                    "strength": self.strength,
                    "seed": rec["seed"],
                }
            )
        return rows

    def det_seed(self, split: str, f: Path, *rest: int) -> int:
        return stable_seed(self.params.seed, "img2img-det" + ("" if split == "train" else f"-{split}"), f.name, *rest)

    def det_work(self, batch: Sequence[tuple[str, Path, int]]) -> list[dict]:
        """Variants of real canvases (split, file, variant number), boxes kept; val canvases go to det_val."""
        canvases = [np.asarray(Image.open(f).convert("RGB")) for _, f, _ in batch]
        labels = [self.real / "det" / "labels" / split / f"{f.stem}.txt" for split, f, _ in batch]
        boxes = [read_yolo_boxes(label) for label in labels]
        if self.backend.text_conditioned:
            records = [
                self.record(sorted({self.classes[c] for c, _ in bx}) or ["nothing"], self.det_seed(*item), -1)
                for item, bx in zip(batch, boxes)
            ]
            results = regenerate_canvases(canvases, records, self.backend, self.sample, self.params.data.det_image_size)
        else:

            def box_record(i: int, j: int, c: int) -> dict:
                return self.record([self.classes[c]], self.det_seed(*batch[i], j), c)

            results = regenerate_boxes(canvases, boxes, box_record, self.backend, self.sample)
        rows = []
        for (split, f, v), image, bx, label in zip(batch, results, boxes, labels):
            stem, part = f"{f.stem}-v{v}", "det" if split == "train" else f"det_{split}"
            save_png(image, self.out / part / "images" / f"{stem}.png")
            write_bytes(self.out / part / "labels" / f"{stem}.txt", label.read_bytes())
            # the seeds really used: the canvas's for a text-conditioned model, one per box for the builtin
            seeds = (
                {"seed": self.det_seed(split, f, v)}
                if self.backend.text_conditioned
                else {"box_seeds": [self.det_seed(split, f, v, j) for j in range(len(bx))]}
            )
            rows.append(
                {
                    "file": f"images/{stem}.png",
                    "source": f"det/images/{split}/{f.name}",
                    "strength": self.strength,
                    **seeds,
                    "boxes": [[c, *(round(t, 6) for t in b)] for c, b in bx],
                }
            )
        return rows


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
    g, p, strength = params.generate, params.img2img, args.strength
    if not 0 < strength <= 1:
        raise DataError(f"--strength {strength}: must be in (0, 1]; check img2img.strengths")
    classes = json.loads((args.real / "classes.json").read_text())
    cls_sources = image_folder(args.real / "cls" / "train", classes)
    if not cls_sources:
        raise DataError(f"{args.real}/cls/train: no images; run `dvc repro prepare` first")
    det = {s: sorted((args.real / "det" / "images" / s).glob("*.png")) if p.det else [] for s in ("train", "val")}
    real_parts = [args.real / "det" / kind / split for split in ("train", "val") for kind in ("images", "labels")]
    fingerprint = {
        "params": declared_params(params, PARAMS),
        "strength": strength,
        "model": model_digest(g.model, args.builtin),
        "real": digest_files([args.real / "cls" / "train", *real_parts]),
    }
    group = process_group(g.device, params.launch.sampling)
    with group.main_process_first():  # only the main process may wipe a stale output
        journal = BatchJournal(args.out, fingerprint)
    backend = backend_for(g, args.builtin, group)
    make_scheduler(p.scheduler, backend.scheduler_config, p.scheduler_options)  # fail on bad options before work
    job = Img2Img(params, classes, backend, strength, args.real, args.out)
    variants = range(p.variants_per_source)
    items = {
        "cls": ([(f, k, v) for f, k in cls_sources for v in variants], job.cls_work),
        "det": ([("train", f, v) for f in det["train"] for v in variants], job.det_work),
        # val canvases (one variant each) only measure box survival on canvases no detector trained on
        "det_val": ([("val", f, 0) for f in det["val"]], job.det_work),
    }
    keys = {
        part: run_batches(journal, todo, g.batch_size, part, work, f"img2img@{strength:g} {part}", group)
        for part, (todo, work) in items.items()
    }
    if group.is_main_process:
        manifests = {part: args.out / part / "manifest.jsonl" for part in keys}
        totals = journal.finish({manifests[part]: k for part, k in keys.items()})
        write_timing(args.metrics, {part: totals[m] for part, m in manifests.items()}, group.num_processes)
        log.info("wrote %d images to %s", sum(len(todo) for todo, _ in items.values()), args.out)


if __name__ == "__main__":
    run(main)
