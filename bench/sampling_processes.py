"""txt2img wall time by launch layout (launcher:processes:threads), and which layouts agree byte for byte.

    python bench/sampling_processes.py [--layouts python:1:2,python:1:1,accelerate:2:1 --scheduler ddim]

Runs the real stage command (``python -m synthaug.launch sampling stages.txt2img``) on the repo's
prompts and builtin model (``dvc repro prompts`` first), once per layout, start-up included, and
prints images/s and a digest of the output folder: layouts with equal threads per process must
give equal digests.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            h.update(str(f.relative_to(folder)).encode() + f.read_bytes())
    return h.hexdigest()[:12]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layouts", default="python:1:2,python:1:1,accelerate:2:1")
    ap.add_argument("--scheduler", default="ddim")
    args = ap.parse_args()
    prompts = ROOT / "data" / "prompts.jsonl"
    if not prompts.is_file():
        sys.exit(f"error: {prompts} is missing; run `dvc repro prompts` first")
    n = sum(1 for line in prompts.read_text().splitlines() if line.strip())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    print(
        f"{n} images, {params['generate']['steps']} steps, batch {params['generate']['batch_size']}, "
        f"{os.cpu_count()} cores\n\n| launcher | processes | threads | wall s | images/s | output digest |\n"
        "|---|---|---|---|---|---|"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for layout in args.layouts.split(","):
            launcher, processes, threads = layout.split(":")
            params["launch"]["sampling"] = {"launcher": launcher, "processes": int(processes), "threads": int(threads)}
            p = Path(tmp) / f"{layout.replace(':', '-')}.yaml"
            p.write_text(yaml.safe_dump(params, sort_keys=False))
            out = Path(tmp) / layout.replace(":", "-")
            t0 = time.perf_counter()
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "synthaug.launch",
                    "sampling",
                    "stages.txt2img",
                    "--params",
                    str(p),
                    "--scheduler",
                    args.scheduler,
                    "--prompts",
                    str(prompts),
                    "--builtin",
                    str(ROOT / "models" / "builtin"),
                    "--out",
                    str(out),
                    "--timings",
                    str(out.with_suffix(".json")),
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                env=dict(os.environ, PYTHONPATH=str(ROOT)),
            )
            seconds = time.perf_counter() - t0
            if proc.returncode:
                sys.exit(f"error: layout {layout} failed:\n{proc.stderr[-2000:]}")
            print(f"| {launcher} | {processes} | {threads} | {seconds:.1f} | {n / seconds:.1f} | {digest(out)} |")


if __name__ == "__main__":
    main()
