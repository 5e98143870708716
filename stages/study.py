"""Stage ``study@<scheduler>``: the scheduler study — quality and cost against sampling steps.

Inputs:  ``--prompts`` (data/prompts.jsonl: the first ``study.per_class`` records of each class,
         same prompts and seeds for every scheduler), the model (as txt2img), ``--judge``
         (models/judge), ``--reference`` (data/reference/pool.safetensors: stage reference's judge
         features of the pool, the largest real split no score is tuned on)
Outputs: ``--out`` (data/study/<scheduler>/<steps>/<class>/<id>.png: the report's galleries, each
         with txt2img's ``parameters`` chunk — the same recipe, synthaug.recipes);
         ``--metrics`` (metrics/study/<scheduler>.json, DVC metrics): per step count, conditional
         accuracy, Fréchet distance and KID (with its spread over subsets) to the reference images
         (judge features; never test, since the study exists to choose); ``--timings``
         (timings/study/<scheduler>.json): seconds per image per step count (wall-clock, so kept
         apart: nothing depends on it)
Params:  generate.*, schedulers.<scheduler>, study.*, launch.sampling.threads (as txt2img),
         data.image_size, data.channels (images are scored as assemble converts them)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from tqdm import tqdm

from synthaug import checksums, recipes
from synthaug.cli import parse_args, pin_threads, run
from synthaug.diffusion import Sampling, backend_for
from synthaug.errors import DataError
from synthaug.files import read_jsonl, write_json
from synthaug.images import atomic_dir, save_png
from synthaug.layout import Study
from synthaug.params import ParamsError, load_params
from synthaug.quality import judge_scores
from synthaug.reference import load_reference
from synthaug.resnet import load_images, load_trained

log = logging.getLogger("study")


def first_per_class(records: list[dict], per_class: int) -> list[dict]:
    taken: dict[int, int] = {}
    out = []
    for r in records:
        if taken.get(r["class"], 0) < per_class:
            taken[r["class"]] = taken.get(r["class"], 0) + 1
            out.append(r)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    paths = ("prompts", "builtin", "judge", "reference", "out", "metrics", "timings")
    args = parse_args(__doc__, argv, *paths, scheduler=str)
    params = load_params(args.params)
    g, study = params.generate, params.study
    if args.scheduler not in params.schedulers:
        raise ParamsError(f"--scheduler {args.scheduler}: no schedulers.{args.scheduler} section in {args.params}")
    options = params.schedulers[args.scheduler]
    records = first_per_class(read_jsonl(args.prompts), study.per_class)
    if not records:
        raise DataError(f"{args.prompts}: no prompt records; run `dvc repro prompts`")
    pin_threads(params.launch.sampling.threads)  # the same images as txt2img's on any machine
    backend = backend_for(g, args.builtin)
    model = recipes.ModelCard.of(g.model, args.builtin, g.dtype, adapters=g.adapters)  # as txt2img's chunks name it
    judge, _ = load_trained(args.judge)
    real_features = load_reference(args.reference, judge)
    result, timings = {}, {}
    with atomic_dir(args.out) as tmp:
        for steps in study.steps:
            files, seconds = [], 0.0
            for i in tqdm(
                range(0, len(records), g.batch_size), desc=f"study {args.scheduler} {steps} steps", unit="batch"
            ):
                batch = records[i : i + g.batch_size]
                sampling = Sampling.of(args.scheduler, backend.scheduler_config, options, steps, g.guidance)
                t0 = time.perf_counter()
                made = recipes.txt2img(backend, batch, args.scheduler, sampling, model)
                seconds += time.perf_counter() - t0
                for record, (image, chunks) in zip(batch, made):
                    files.append(Study(tmp).steps(steps) / record["name"] / f"{record['id']}.png")
                    save_png(image, files[-1], chunks)
            scores = judge_scores(
                judge,
                load_images(files, (params.data.image_size, params.data.channels)),
                [r["class"] for r in records],
                real_features,
            )
            result[f"steps_{steps}"] = {
                "steps": steps,
                "conditional_accuracy": scores["conditional_accuracy"],
                "frechet_distance": scores["frechet_distance"],
                "kid": scores["kid"],
                "kid_std": scores["kid_std"],
            }
            timings[f"steps_{steps}"] = {"steps": steps, "seconds_per_image": round(seconds / len(records), 5)}
            log.info("%s, %d steps: %s, %s", args.scheduler, steps, result[f"steps_{steps}"], timings[f"steps_{steps}"])
        checksums.write(tmp)
        result["content_md5"] = checksums.digest(tmp)  # the report depends on this file, not on the images
    write_json(args.metrics, result)
    write_json(args.timings, timings)


if __name__ == "__main__":
    run(main)
