"""The app's speed on the builtin model, next to the library called directly (README: The app).

    python bench/app_speed.py [--repeats 5]

Prints, per line: the first image of a session (App start-up and model load included), a further
25-step image through the Sample tab's handler and through synthaug.diffusion directly (same request,
same PNG written), and a 2 × 3 X/Y grid. Goals: ≤ 3 s, ≤ 0.5 s, ≤ 10 s, handler ≤ 10 % over direct.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from synthaug.offline import harden  # noqa: E402

harden()
from synthaug.diffusion import Sampling  # noqa: E402
from synthaug.images import save_png  # noqa: E402
from synthaug.infotext import sd_parameters  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    out = Path(tempfile.mkdtemp(prefix="app-speed-"))
    form = dict(mode="txt2img", model="builtin", label="seven", prompt="seven", negative_prompt="blurry",
                scheduler="ddim", options='{"eta": 0.0}', steps=25, guidance=2.0, seed=1, random_seed=False,
                batch=1, upload=None, real_image=None, strength=0.5)  # fmt: skip
    t0 = time.perf_counter()
    from synthaug.app.handlers import App

    app = App(ROOT, out=out)
    app.sample(form)
    first = time.perf_counter() - t0
    backend = app.engine.backend("builtin")
    record = {"class": 7, "prompt": "seven", "negative_prompt": "blurry", "seed": 1}
    handler, direct = [], []
    for i in range(args.repeats):
        t0 = time.perf_counter()
        app.sample(form | {"seed": 100 + i})
        handler.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        sampling = Sampling.of("ddim", backend.scheduler_config, {"eta": 0.0}, 25, 2.0)
        image = backend.txt2img([record | {"seed": 100 + i}], sampling)[0]
        text = sd_parameters(record, "DDIM", 25, 2.0, image.shape[1::-1], app.engine.builtin_label)
        save_png(image, out / f"direct-{i}.png", {"parameters": text})
        direct.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    app.compare(form, ("scheduler", "ddim, dpmpp"), ("steps", "10, 25, 50"))
    grid = time.perf_counter() - t0
    h, d = statistics.median(handler), statistics.median(direct)
    print(f"first image of a session (start-up + model load): {first:.2f} s  (goal <= 3 s)")
    print(f"further 25-step image, Sample handler:            {h:.3f} s  (goal <= 0.5 s; median of {args.repeats})")
    print(f"further 25-step image, library directly:          {d:.3f} s")
    print(f"handler over library:                             {100 * (h / d - 1):+.1f} %  (goal <= +10 %)")
    print(f"2 x 3 grid (ddim, dpmpp x 10, 25, 50 steps):      {grid:.2f} s  (goal <= 10 s)")


if __name__ == "__main__":
    main()
