"""Stage ``quality_txt2img@<scheduler>`` / ``quality_img2img@<strength>``: how good one synthetic source is.

Inputs:  ``--synthetic`` (data/synthetic/<kind>/<name>: ``cls/`` images + ``cls/manifest.jsonl``),
         ``--judge`` (models/judge), ``--real`` (data/real: ``cls/val``, ``classes.json``), ``--reference``
         (data/reference/pool.safetensors: stage reference's judge features of the real images the
         scores compare against — the pool, the largest split no score is tuned on)
Outputs: ``--out`` (metrics/quality/<kind>/<name>.json, DVC metrics):
         ``conditional_accuracy`` — share the judge assigns to their intended class;
         ``frechet_distance`` — between synthetic and reference images, in the judge's
         penultimate-layer features (FID's formula; biased upwards at these sample sizes, so
         compare sources at equal counts only); ``kid`` and ``kid_std`` — the kernel inception
         distance in the same features (unbiased), its mean and spread over 100 subsets; ``cas`` —
         classification accuracy score: a ResNet trained on the synthetic images alone with
         train_resnet's budget, tested on real val; ``content_md5``, which images were scored
         (synthaug.checksums.digest of the source's MD5SUMS).
         No seconds: sampling cost is measured by the generation stage (timings/), so a rerun that
         makes the same images reruns nothing here.
Params:  seed, data.image_size, data.channels (images of any size are scored as assemble converts
         them), train_resnet (budget), launch.training.threads
These scores exist to choose a scheduler, step count or strength, so they look at ``val`` only:
the test split is touched by the evaluate stage alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from synthaug import checksums
from synthaug.cli import parse_args, pin_threads, run
from synthaug.errors import DataError
from synthaug.files import write_json
from synthaug.images import image_folder
from synthaug.layout import Real, Source
from synthaug.params import Params, load_params
from synthaug.quality import judge_scores
from synthaug.reference import load_reference
from synthaug.resnet import accuracy, build_resnet, load_folder, load_images, load_trained, train

log = logging.getLogger("quality")


def classification_accuracy_score(
    images: torch.Tensor, labels: torch.Tensor, val: tuple, classes: list[str], params: Params
) -> float:
    """Train on synthetic only (train_resnet's budget, ``seed``), score on real val images."""
    torch.manual_seed(params.seed)
    net = build_resnet(params.train_resnet, len(classes))
    empty = (images[:0], labels[:0])
    train(net, (images, labels), empty, val, 0.0, params.train_resnet, params.seed, desc="CAS")
    return accuracy(net, *val)  # the final model: val is logged during training, never used to select


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv, "synthetic", "judge", "real", "reference", "out")
    params = load_params(args.params)
    pin_threads(params.launch.training.threads)  # results must not depend on the machine's cores
    real, source = Real(args.real), Source(args.synthetic)
    classes = real.classes()
    if not source.manifest.is_file():
        raise DataError(f"{source.manifest}: missing; generate {args.synthetic} first (`dvc repro`)")
    files = image_folder(source.cls, classes)
    if len(files) < 2:
        raise DataError(f"{source.cls}: {len(files)} synthetic images; the scores need at least 2")
    fit = (params.data.image_size, params.data.channels)  # as assemble makes them dataset images
    images, labels = load_images([f for f, _ in files], fit), torch.tensor([k for _, k in files])
    judge, _ = load_trained(args.judge)
    checksums.verify(real.cls("val"), args.synthetic)
    val = load_folder(real.cls("val"), classes)
    result = judge_scores(judge, images, labels.tolist(), load_reference(args.reference, judge))
    result["cas"] = round(classification_accuracy_score(images, labels, val, classes, params), 6)
    result["content_md5"] = checksums.digest(args.synthetic)  # what was scored: the report depends on it
    write_json(args.out, result)
    log.info("%s: %s", args.synthetic, result)


if __name__ == "__main__":
    run(main)
