"""Stage ``reference``: the judge's view of the real images every synthetic source is scored against.

Inputs:  ``--judge`` (models/judge), ``--images`` (data/real/cls/pool: the largest real split no score
         is tuned on — the generator's own training digits, as FID scores against a training set),
         ``--classes`` (data/real/classes.json: the order the images are read in)
Outputs: ``--out`` (data/reference/pool.safetensors): ``features``, the judge's penultimate-layer
         features of every image, float32, in ImageFolder order
Params:  launch.training.threads (the features' rounding depends on it)
Computed once here instead of in each of the quality and study stages, which read this one file: they
no longer recompute the same features, and DVC hashes one file for them instead of the 3,000 images.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from synthaug import checksums
from synthaug.cli import parse_args, pin_threads, run
from synthaug.errors import DataError
from synthaug.layout import read_classes
from synthaug.params import load_params
from synthaug.reference import save_reference
from synthaug.resnet import load_folder, load_trained, predict

log = logging.getLogger("reference")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv, "judge", "images", "classes", "out")
    params = load_params(args.params)
    pin_threads(params.launch.training.threads)  # results must not depend on the machine's cores
    checksums.verify(args.images)
    images, _ = load_folder(args.images, read_classes(args.classes))
    if len(images) < 2:
        raise DataError(f"{args.images}: {len(images)} images; the scores need at least 2 real ones to compare with")
    judge, _ = load_trained(args.judge)
    _, features = predict(judge, images)
    save_reference(args.out, features)
    log.info("%s: judge features of %d images → %s", args.images, len(features), args.out)


if __name__ == "__main__":
    run(main)
