"""What DVC and process start-up cost around the stages' own work.

    python bench/dvc_overhead.py [--repo .] [--runs 3]      # no-op `dvc repro` and `dvc status`
    python bench/dvc_overhead.py --repo CLONE --repro        # a whole `dvc repro`: wall vs stage bodies
    python bench/dvc_overhead.py --repo DONE --repro S1 S2   # `dvc repro -f -s S1 S2` in a finished workspace
    python bench/dvc_overhead.py --repo CLONE --gaps EPOCH   # no run: the gaps of the run started at EPOCH

The no-op figures are medians over ``--runs`` with every output in place. ``--repro`` runs
``dvc repro`` in ``--repo`` (its own ``.venv`` first on PATH, as ``make repro`` puts it) and splits
its wall time into the stage bodies — each stage's ``main`` as ``synthaug.cli.run`` times it into
``.dvc/tmp/synthaug-timings.jsonl`` — and the rest: DVC's own work (hashing, cache, dvc.lock) and
each stage process's start-up and imports — in total and as the gap before each kind of stage.
Point ``--repo`` at a fresh clone of any revision to compare revisions one after the other on one
machine; ``SYNTHAUG_WARM=0`` in the environment starts every stage in a fresh interpreter
(``synthaug.warm``), for a side-by-side of the start-up alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def dvc(repo: Path, *args: str, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def timings(repo: Path) -> list[dict]:
    path = repo / ".dvc" / "tmp" / "synthaug-timings.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def finished(row: dict) -> float:
    return time.mktime(time.strptime(row["finished"], "%Y-%m-%d %H:%M:%S"))


def gaps(rows: list[dict], started: float) -> None:
    """Per kind of stage: its bodies and the gaps before them — from the previous stage's end (or the
    repro's start) to this body's start: the previous stage's exit and DVC's hashing, caching and
    lock update, then this stage's checks, interpreter start and imports (1 s resolution)."""
    kinds: dict[str, list[float]] = {}
    last = started
    for row in rows:
        end = finished(row)
        gap = max(0.0, end - row["seconds"] - last)
        kinds.setdefault(row["stage"].split("@")[0], []).extend([row["seconds"], gap])
        last = end
    print(f"{'stage':<16}{'runs':>5}{'bodies s':>10}{'gaps s':>9}{'gap a stage':>13}")
    for kind, values in kinds.items():
        bodies, gap = sum(values[::2]), sum(values[1::2])
        n = len(values) // 2
        print(f"{kind:<16}{n:>5}{bodies:>10.0f}{gap:>9.0f}{gap / n:>12.1f}s")


def hashed_entries(repo: Path) -> tuple[int, int]:
    """The files DVC hashes on a no-op: under every data dep and every output of every stage (a path
    under several stages counts once per stage, as DVC walks it once per stage)."""
    from dvc.repo import Repo

    def files(path: Path) -> int:
        return sum(len(names) for _, _, names in os.walk(path)) if path.is_dir() else int(path.exists())

    deps = outs = 0
    with Repo(str(repo)) as dvc_repo:
        for stage in dvc_repo.index.stages:
            deps += sum(files(repo / str(d.def_path)) for d in stage.deps if type(d).__name__ == "Dependency")
            outs += sum(files(repo / str(o.def_path)) for o in stage.outs)
    return deps, outs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, default=Path("."))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--repro", nargs="*", metavar="STAGE", help="run a whole dvc repro (or force these stages) and split its time"
    )
    ap.add_argument("--gaps", type=float, metavar="EPOCH", help="no run: the last run's gaps, from its start time")
    args = ap.parse_args()
    repo = args.repo.resolve()
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    if (repo / ".venv" / "bin").is_dir():
        env["PATH"] = f"{repo / '.venv' / 'bin'}:{env['PATH']}"
    listed = subprocess.run(
        [sys.executable, "-m", "dvc", "stage", "list", "--name-only"], cwd=repo, env=env, capture_output=True, text=True
    )
    n_stages = len(listed.stdout.split())
    lock = (repo / "dvc.lock").stat().st_size / 1e3 if (repo / "dvc.lock").is_file() else 0
    deps, outs = hashed_entries(repo)
    print(f"{repo}: {n_stages} stages, dvc.lock {lock:.0f} kB, hashed entries {deps:,} in deps + {outs:,} in outputs")
    if args.gaps:
        gaps([r for r in timings(repo) if finished(r) >= args.gaps], args.gaps)
        return
    if args.repro is not None:
        before = len(timings(repo))
        started, t0 = time.time(), time.perf_counter()
        forced = ["-f", "-s", *args.repro] if args.repro else []
        subprocess.run([sys.executable, "-m", "dvc", "repro", *forced], cwd=repo, env=env, check=True)
        wall = time.perf_counter() - t0
        rows = timings(repo)[before:]
        bodies = sum(r["seconds"] for r in rows)
        print(
            f"dvc repro: {len(rows)} stages ran in {wall:.0f} s; stage bodies {bodies:.0f} s; "
            f"DVC + start-up {wall - bodies:.0f} s = {(wall - bodies) / wall:.1%} of the run, "
            f"{(wall - bodies) / max(1, len(rows)):.1f} s a stage"
        )
        gaps(rows, started)
        return
    status = [dvc(repo, "status", env=env) for _ in range(args.runs)]
    noop = [dvc(repo, "repro", env=env) for _ in range(args.runs)]
    for name, times in (("no-op dvc repro", noop), ("dvc status", status)):
        spread = f"median of {args.runs}; {min(times):.2f}–{max(times):.2f}"
        print(f"{name + ':':<17}{statistics.median(times):.2f} s ({spread})")


if __name__ == "__main__":
    main()
