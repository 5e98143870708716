"""Stage ``txt2img@<scheduler>``: sample one image per prompt record with one scheduler.

Inputs:  ``--prompts`` (data/prompts.jsonl), the model (``generate.model``: ``builtin`` = ``--builtin``
         folder, a local diffusers folder, or a hub id)
Outputs: ``--out`` (data/synthetic/txt2img/<scheduler>, a synthetic source's layout): ``cls/<class>/<id>.png``
         — each with a ``parameters`` text chunk as Stable Diffusion web UIs write it and a ``synthaug`` one
         (the exact JSON that remakes it, synthaug.infotext) — and ``cls/manifest.jsonl``
         (file, class, prompt, negative prompt, seed, scheduler, steps, guidance, model);
         ``--timings`` (timings/txt2img/<scheduler>.json): images, measured seconds per image,
         processes — wall-clock, so no stage depends on it. Resumable: finished batches survive an
         interruption (see synthaug/resume.py).
Params:  generate.*, schedulers.<scheduler>, launch.sampling.threads
Runs as one process or, under ``python -m synthaug.launch sampling`` (launch.sampling), as several
that share the batches out; the images and manifest are byte-identical either way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from synthaug import checksums, recipes
from synthaug.cli import parse_args, run
from synthaug.diffusion import Sampling, backend_for, make_scheduler
from synthaug.files import read_jsonl
from synthaug.images import save_png
from synthaug.launch import process_group
from synthaug.layout import Source
from synthaug.params import ParamsError, load_params
from synthaug.resume import (
    BatchJournal,
    declared_params,
    digest_files,
    run_batches,
    write_timing,
)

log = logging.getLogger("txt2img")
PARAMS = ("generate", "schedulers.{scheduler}", "launch.sampling.threads")  # as dvc.yaml declares them


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv, "prompts", "builtin", "out", "timings", scheduler=str)
    params = load_params(args.params)
    g = params.generate
    if args.scheduler not in params.schedulers:
        raise ParamsError(f"--scheduler {args.scheduler}: no schedulers.{args.scheduler} section in {args.params}")
    options = params.schedulers[args.scheduler]
    records = read_jsonl(args.prompts)
    model = recipes.ModelCard.of(g.model, args.builtin, g.dtype, adapters=g.adapters)
    out = Source(args.out)
    fingerprint = {
        "params": declared_params(params, PARAMS, scheduler=args.scheduler),
        "prompts": digest_files([args.prompts]),
        "model": model.fingerprint,
        **({"adapters": [a["sha256"] for a in model.adapters]} if model.adapters else {}),  # files, not names
    }
    group = process_group(g.device, params.launch.sampling)
    with group.main_process_first():  # only the main process may wipe a stale output
        journal = BatchJournal(args.out, fingerprint)
    backend = backend_for(g, args.builtin, group)
    make_scheduler(args.scheduler, backend.scheduler_config, options)  # fail on bad options before work

    def work(batch: Sequence[dict]) -> list[dict]:
        sampling = Sampling.of(args.scheduler, backend.scheduler_config, options, g.steps, g.guidance)
        rows = []
        for record, (image, chunks) in zip(batch, recipes.txt2img(backend, batch, args.scheduler, sampling, model)):
            rel = f"{record['name']}/{record['id']}.png"
            save_png(image, out.cls / rel, chunks)
            rows.append(
                {
                    "file": rel,
                    **{k: record[k] for k in ("class", "name", "prompt", "negative_prompt", "seed")},
                    "scheduler": args.scheduler,
                    "steps": g.steps,
                    "guidance": g.guidance,
                    "model": model.label,
                    **({"adapters": list(model.adapters)} if model.adapters else {}),
                }
            )
        return rows

    keys = run_batches(journal, records, g.batch_size, "batch", work, f"txt2img@{args.scheduler}", group)
    if group.is_main_process:
        totals = journal.finish({out.manifest: keys})
        checksums.write(args.out)  # what assemble and quality depend on and check it against
        write_timing(args.timings, {"cls": totals[out.manifest]}, group.num_processes)
        log.info("wrote %d images to %s", len(records), args.out)


if __name__ == "__main__":
    run(main)
