"""Entry-point wrapper shared by the stages: logging, one-line errors, and per-stage timings
(offline set-up happens when the ``stages`` package is imported, before any heavy import)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from synthaug.errors import UserError


def _timings_file() -> Path | None:
    """DVC's own scratch folder of the repo running the stage (``dvc repro`` sets DVC_ROOT)."""
    root = os.environ.get("DVC_ROOT")
    return Path(root) / ".dvc" / "tmp" / "synthaug-timings.jsonl" if root else None


def read_timings() -> dict[str, dict]:
    """The last recorded wall time of each DVC stage (later lines win)."""
    path = _timings_file() or Path(".dvc/tmp/synthaug-timings.jsonl")
    timings: dict[str, dict] = {}
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            row = json.loads(line)
            timings[row["stage"]] = row
        except (json.JSONDecodeError, KeyError):
            continue  # a line cut short by a crash is not worth failing a report over
    return timings


def parse_args(doc: str, argv: Sequence[str] | None, *paths: str, **options: type) -> argparse.Namespace:
    """A stage's command line: ``--params`` and every name in ``paths`` a required path (dvc.yaml
    chooses them all), each of ``options`` a required value of its type (``--variant``, ``--seed``)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    for name in ("params", *paths):
        ap.add_argument(f"--{name}", type=Path, required=True)
    for name, kind in options.items():
        ap.add_argument(f"--{name}", type=kind, required=True)
    return ap.parse_args(argv)


def configure_logging() -> None:
    """The stages' log format, in a stage's process and in every process it spawns."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def run(main: Callable[[Sequence[str] | None], None], argv: Sequence[str] | None = None) -> None:
    """Run a stage's ``main``: user errors (and running out of GPU memory) become one ``error:`` line
    and exit status 1; a stage that DVC ran successfully appends its wall time to the timings file
    (its main process, when a launcher started several)."""
    configure_logging()
    t0 = time.perf_counter()
    try:
        main(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        if type(exc).__name__ != "OutOfMemoryError":  # torch.cuda's; torch itself need not be imported here
            raise
        print(
            f"error: out of GPU memory ({str(exc).splitlines()[0]}); lower the batch size (generate.batch_size, "
            "train_resnet.batch_size or train_yolo.batch; bench/gpu_sampling.py shows the peak per batch) or "
            "set generate.attention_slicing: true",
            file=sys.stderr,
        )
        sys.exit(1)
    path, stage = _timings_file(), os.environ.get("DVC_STAGE")
    if path is not None and stage and os.environ.get("RANK", "0") == "0":  # one row per launched stage
        path.parent.mkdir(parents=True, exist_ok=True)
        row = {
            "stage": stage,
            "seconds": round(time.perf_counter() - t0, 2),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        with open(path, "a") as fh:  # one short append per stage: safe with parallel queue workers
            fh.write(json.dumps(row) + "\n")


def pin_threads(threads: int) -> None:
    """Fix torch's CPU threads (``launch.*.threads``). Left alone, torch takes one per available core,
    and a reduction split over more threads rounds differently: a model or metric would depend on the
    machine. Every stage that runs torch calls this first."""
    import torch

    torch.set_num_threads(threads)
