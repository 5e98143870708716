"""Stage ``real_pool``: the real reference source — extra *real* labelled digits from the pool.

Inputs:  ``--pool`` (data/real/cls/pool: the digits the builtin generator learned from),
         ``--classes`` (data/real/classes.json)
Outputs: ``--out`` (data/synthetic/real/pool): ``cls/<class>/*.png`` + ``cls/manifest.jsonl``, the layout
         of every synthetic source, so a variant with ``source: real/pool`` is assembled (cls mixing, X-Paste
         for detection) and trained exactly like a txt2img variant
Params:  seed, real_pool.per_class
The comparison it makes possible: the builtin generator learned from these labelled pool digits;
a synthetic variant is only worth its cost if it does better than the same number of real ones.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from synthaug import checksums
from synthaug.cli import parse_args, run
from synthaug.errors import DataError
from synthaug.files import write_jsonl
from synthaug.images import atomic_dir, image_folder, link
from synthaug.layout import Real, Source, read_classes
from synthaug.params import load_params

log = logging.getLogger("real_pool")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv, "pool", "classes", "out")
    params = load_params(args.params)
    per_class = params.real_pool.per_class
    classes = read_classes(args.classes)
    checksums.verify(args.pool)
    files = image_folder(args.pool, classes)
    rng = np.random.default_rng([params.seed, 11])
    rows = []
    with atomic_dir(args.out) as tmp:
        for k, name in enumerate(classes):
            members = [f for f, c in files if c == k]
            if len(members) < per_class:
                raise DataError(
                    f"{args.pool}/{name}: {len(members)} pool images, fewer than real_pool.per_class "
                    f"({per_class}); lower it or add images to the pool"
                )
            for i in sorted(rng.choice(len(members), per_class, replace=False)):
                f = members[i]
                link(f, Source(tmp).cls / name / f.name)
                source = (Real(Path()).cls("pool") / name / f.name).as_posix()  # as under data/real
                rows.append({"file": f"{name}/{f.name}", "source": source, "class": k, "name": name})
        write_jsonl(Source(tmp).manifest, rows)
        checksums.write(tmp)  # what assemble and quality depend on and check it against
    log.info("linked %d real pool images (%d per class) into %s", len(rows), per_class, args.out)


if __name__ == "__main__":
    run(main)
