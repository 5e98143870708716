"""Stage ``img2img@<strength>``: variants of the real low-data train set at one SDEdit strength.

Inputs:  ``--real`` (data/real): ``cls/train`` images and ``det/{images,labels}/{train,val}``
         canvases; the model (``generate.model``, ``builtin`` = ``--builtin``)
Outputs: ``--out`` (data/synthetic/img2img/<strength>): ``cls/<class>/<source>-v<k>.png`` (label kept)
         and ``det/images|labels/<source>-v<k>.*`` (boxes kept) for training; ``det_val/`` — one
         variant of each real *val* canvas, never trained on, for the survival stage's held-out
         measurement; each image with the img2img recipe's chunks (synthaug.recipes; a builtin
         canvas, whose digits are remade box by box, has none); each part with ``manifest.jsonl``
         (source file, strength, ``steps`` and ``denoising_steps`` — the int(steps × strength) SDEdit
         really takes — seed, class or boxes); ``--timings`` (timings/img2img/<strength>.json):
         measured seconds per image.
         Resumable, and shared out over launched processes, like txt2img.
Params:  seed, data.image_size, data.channels, data.det_image_size, generate.*, img2img.* (but
         strengths), prompts.templates, prompts.negative_prompt, launch.sampling.threads
Inputs of any size are letterboxed to the model's size and the result resized back. Detection with
a text-conditioned model sends the whole canvas through img2img; with the builtin class model each
box's crop is turned into a digit mask, regenerated in place conditioned on the box's class and
pasted back in the original ink colour over the erased old digit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from synthaug import checksums, recipes
from synthaug.cli import parse_args, run
from synthaug.diffusion import backend_for, make_scheduler
from synthaug.errors import DataError
from synthaug.images import image_folder
from synthaug.launch import process_group
from synthaug.layout import Real, Source
from synthaug.params import load_params
from synthaug.regenerate import Img2ImgJob
from synthaug.resume import (
    BatchJournal,
    declared_params,
    digest_files,
    run_batches,
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


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv, "real", "builtin", "out", "timings", strength=float)
    params = load_params(args.params)
    g, p, strength = params.generate, params.img2img, args.strength
    if not 0 < strength <= 1:
        raise DataError(f"--strength {strength}: must be in (0, 1]; check img2img.strengths")
    real, out = Real(args.real), Source(args.out)
    folders = [real.cls("train"), *(d(s) for s in ("train", "val") for d in (real.det.images, real.det.labels))]
    checksums.verify(*folders)
    classes = real.classes()
    cls_sources = image_folder(real.cls("train"), classes)
    if not cls_sources:
        raise DataError(f"{real.cls('train')}: no images; run `dvc repro prepare` first")
    det = {s: real.det.canvases(s) if p.det else [] for s in ("train", "val")}
    model = recipes.ModelCard.of(g.model, args.builtin, g.dtype, adapters=g.adapters)
    fingerprint = {
        "params": declared_params(params, PARAMS),
        "strength": strength,
        "model": model.fingerprint,
        **({"adapters": [a["sha256"] for a in model.adapters]} if model.adapters else {}),  # files, not names
        "real": digest_files(f / checksums.NAME for f in folders),  # verified: their MD5SUMS stand for them
    }
    group = process_group(g.device, params.launch.sampling)
    with group.main_process_first():  # only the main process may wipe a stale output
        journal = BatchJournal(args.out, fingerprint)
    backend = backend_for(g, args.builtin, group)
    make_scheduler(p.scheduler, backend.scheduler_config, p.scheduler_options)  # fail on bad options before work
    job = Img2ImgJob(params, classes, backend, model, strength, real, out)
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
        manifests = {"cls": out.manifest, "det": out.det.manifest, "det_val": out.det_val.manifest}
        totals = journal.finish({manifests[part]: k for part, k in keys.items()})
        checksums.write(args.out)  # what assemble, quality and survival depend on and check it against
        write_timing(args.timings, {part: totals[m] for part, m in manifests.items()}, group.num_processes)
        log.info("wrote %d images to %s", sum(len(todo) for todo, _ in items.values()), args.out)


if __name__ == "__main__":
    run(main)
