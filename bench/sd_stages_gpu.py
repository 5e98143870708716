"""The real user's path on a GPU, stage by stage: Stable Diffusion 1.5's architecture saved as a
local diffusers folder (random weights: time and memory do not depend on them), then the
``prompts``, ``txt2img`` and ``img2img`` stage commands exactly as dvc.yaml runs them, at the
model's own 512 px, and assemble's conversion of those images into ``data.image_size`` dataset
images (on the CPU).

    python bench/sd_stages_gpu.py --images 400 --batch 8 --out bench-sd-stages.json
    python bench/sd_stages_gpu.py --tiny --device cpu --images 20   # the same path on a CPU, tiny model

Prints, per stage, wall seconds (model loading included), the stage's own sampling seconds per
image, the GPU memory peak (nvidia-smi, whole device) and MB of PNG per 1,000 images.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from synthaug.layout import Real, Source  # noqa: E402
from synthaug.offline import harden  # noqa: E402

harden()
log = logging.getLogger("sd_stages_gpu")
CLASSES = ["cat", "dog", "car", "tree", "boat", "bird", "chair", "cup", "house", "horse"]


def build_model(path: Path, tiny: bool, device: str) -> None:
    import torch

    if tiny:
        from tests.tiny_models import tiny_stable_diffusion

        tiny_stable_diffusion(path)
        return
    sys.path.insert(0, str(ROOT / "bench"))
    from gpu_sampling import sd15

    backend = sd15(torch.float16, device)
    backend.pipe.save_pretrained(path, safe_serialization=True)


class GpuPeak:
    """Polls nvidia-smi for the device's used memory while a stage runs (the stage is another process)."""

    def __init__(self) -> None:
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run(
                    ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                    capture_output=True,
                    text=True,
                    timeout=5,
                ).stdout
                self.peak = max(self.peak, int(out.split()[0]))
            except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
                return
            time.sleep(0.2)

    def __enter__(self) -> GpuPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def stage(name: str, *args: object) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", f"stages.{name}", *map(str, args)],
        cwd=ROOT,
        text=True,
        capture_output=True,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))),
    )
    if proc.returncode:
        sys.exit(f"error: stage {name} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def png_mb_per_1000(folder: Path) -> float:
    files = list(folder.rglob("*.png"))
    return round(sum(f.stat().st_size for f in files) / len(files) * 1000 / 1e6, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=400, help="txt2img images (img2img remakes half of them)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--strength", type=float, default=0.5)
    ap.add_argument("--image-size", type=int, default=224, help="data.image_size the images are converted to")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="the tests' tiny 64 px model instead of SD 1.5's")
    ap.add_argument("--out", type=Path, default=Path("bench-sd-stages.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    work = Path(tempfile.mkdtemp(prefix="sd-stages-"))
    t0 = time.perf_counter()
    build_model(work / "sd", args.tiny, args.device)
    log.info("model folder written in %.1f s", time.perf_counter() - t0)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(source="folders", channels=3, image_size=args.image_size)
    params["prompts"].update(per_class=args.images // len(CLASSES), templates=["a photo of a {name}"])
    params["generate"].update(
        model=str(work / "sd"),
        device=args.device,
        dtype="float16" if args.device == "cuda" else "float32",
        batch_size=args.batch,
        steps=args.steps,
        guidance=7.5,
        size=None,
    )
    params["img2img"].update(scheduler="ddim", variants_per_source=1, det=False)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (work / "classes.json").write_text(json.dumps(CLASSES))
    p = work / "params.yaml"
    stage("prompts", "--params", p, "--classes", work / "classes.json", "--out", work / "prompts.jsonl")
    rows = {}
    with GpuPeak() as peak:
        wall = stage(
            "txt2img",
            "--params",
            p,
            "--scheduler",
            "ddim",
            "--prompts",
            work / "prompts.jsonl",
            "--builtin",
            work / "unused",
            "--out",
            work / "txt2img",
            "--timings",
            work / "txt2img.json",
        )
    timing = json.loads((work / "txt2img.json").read_text())["cls"]
    rows["txt2img"] = {
        "images": timing["images"],
        "wall_s": round(wall, 1),
        "sampling_s_per_image": timing["seconds_per_image"],
        "gpu_peak_mib": peak.peak,
        "png_mb_per_1000": png_mb_per_1000(work / "txt2img"),
    }
    # img2img remakes "real" train images: half of the txt2img ones, laid out as prepare lays them out
    real = Real(work / "real")
    for name in CLASSES:
        made = sorted((Source(work / "txt2img").cls / name).glob("*.png"))
        for f in made[: max(1, params["prompts"]["per_class"] // 2)]:
            (real.cls("train") / name).mkdir(parents=True, exist_ok=True)
            (real.cls("train") / name / f.name).write_bytes(f.read_bytes())
    for split in ("train", "val"):
        real.det.images(split).mkdir(parents=True, exist_ok=True)
        real.det.labels(split).mkdir(parents=True, exist_ok=True)
    real.classes_file.write_text(json.dumps(CLASSES))
    with GpuPeak() as peak:
        wall = stage(
            "img2img",
            "--params",
            p,
            "--strength",
            args.strength,
            "--real",
            real.root,
            "--builtin",
            work / "unused",
            "--out",
            work / "img2img",
            "--timings",
            work / "img2img.json",
        )
    timing = json.loads((work / "img2img.json").read_text())["cls"]
    rows[f"img2img@{args.strength:g}"] = {
        "images": timing["images"],
        "wall_s": round(wall, 1),
        "sampling_s_per_image": timing["seconds_per_image"],
        "gpu_peak_mib": peak.peak,
        "png_mb_per_1000": png_mb_per_1000(Source(work / "img2img").cls),
    }
    from PIL import Image

    from synthaug.images import cls_image

    files = sorted((work / "txt2img").rglob("*.png"))
    t0 = time.perf_counter()
    for f in files:
        with Image.open(f) as img:
            cls_image(img, args.image_size, 3).save(work / "converted.png")
    rows["assemble conversion"] = {
        "images": len(files),
        "wall_s": round(time.perf_counter() - t0, 2),
        "sampling_s_per_image": None,
        "gpu_peak_mib": None,
        "png_mb_per_1000": None,
    }
    import torch

    device = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(
        f"\n{device}, torch {torch.__version__}, {args.steps} steps, batch {args.batch}, "
        f"model {'tiny 64 px' if args.tiny else 'SD 1.5 architecture, 512 px, float16'}\n"
    )
    print(
        "| stage | images | wall s | sampling s/image | s per 1,000 images (sampling) | GPU peak MiB "
        "| PNG MB per 1,000 |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        per = r["sampling_s_per_image"]
        print(
            f"| {name} | {r['images']} | {r['wall_s']} | {per if per is not None else '—'} | "
            f"{round(per * 1000) if per is not None else round(r['wall_s'] / r['images'] * 1000, 1)} | "
            f"{r['gpu_peak_mib'] or '—'} | {r['png_mb_per_1000'] or '—'} |"
        )
    args.out.write_text(json.dumps({"device": device, "torch": torch.__version__, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
