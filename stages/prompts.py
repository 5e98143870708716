"""Stage ``prompts``: the list of images to make, one JSON record per image.

Inputs:  ``--classes`` (data/real/classes.json)
Outputs: ``--out`` (data/prompts.jsonl): ``{"id", "class", "name", "prompt", "negative_prompt", "seed"}``
Params:  seed, prompts.*
Record ``i`` of a class combines template ``i mod T`` with style ``(i div T) mod S``; its seed is a
hash of (seed, class name, i), so it never depends on batch position or on the other records.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from synthaug.cli import parse_args, run
from synthaug.files import write_jsonl
from synthaug.layout import read_classes
from synthaug.params import load_params
from synthaug.prompting import make_records

log = logging.getLogger("prompts")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv, "classes", "out")
    params = load_params(args.params)
    records = make_records(read_classes(args.classes), params.prompts, params.seed)
    write_jsonl(args.out, records)
    log.info("wrote %d prompts to %s", len(records), args.out)


if __name__ == "__main__":
    run(main)
