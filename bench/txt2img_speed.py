"""Throughput of the txt2img stage against (a) a plain hand-written diffusers loop on the same model,
scheduler and batch, and (b) the stage's own path one image at a time.

    python bench/txt2img_speed.py [--images 200 --scheduler ddim]

Goals: stage / hand-written ≥ 0.95; stage / one-at-a-time ≥ 3. Both timed paths include writing PNGs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from synthaug.dag import Dag
from synthaug.offline import harden

harden()
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DModel  # noqa: E402

from stages import txt2img  # noqa: E402
from synthaug.diffusion import Sampling, load_backend  # noqa: E402
from synthaug.images import save_png  # noqa: E402
from synthaug.params import load_params  # noqa: E402
from synthaug.prompting import make_records  # noqa: E402


def stage(params_path: Path, prompts: Path, model: Path, scheduler: str, out: Path) -> float:
    t0 = time.perf_counter()
    txt2img.main(
        [
            "--params",
            str(params_path),
            "--scheduler",
            scheduler,
            "--prompts",
            str(prompts),
            "--builtin",
            str(model),
            "--out",
            str(out),
            "--timings",
            str(out.with_suffix(".json")),
        ]
    )
    return time.perf_counter() - t0


@torch.inference_mode()
def hand_written(records: list[dict], model: Path, steps: int, guidance: float, batch: int, out: Path) -> float:
    """What a researcher writes by hand: load the parts, loop over timesteps, decode, save."""
    t0 = time.perf_counter()
    vae = AutoencoderKL.from_pretrained(model, subfolder="vae").eval()
    unet = UNet2DModel.from_pretrained(model, subfolder="unet").eval()
    sched = DDIMScheduler.from_pretrained(model, subfolder="scheduler")
    null = json.loads((model / "model_index.json").read_text())["null_class"]
    c = unet.config
    for i in range(0, len(records), batch):
        recs = records[i : i + batch]
        sched.set_timesteps(steps)
        gens = [torch.Generator().manual_seed(r["seed"]) for r in recs]
        lat = torch.cat([torch.randn((1, c.in_channels, c.sample_size, c.sample_size), generator=g) for g in gens])
        labels = torch.tensor([r["class"] for r in recs])
        labels = torch.cat([labels, torch.full_like(labels, null)])
        for t in sched.timesteps:
            cond, uncond = unet(torch.cat([lat, lat]), t, class_labels=labels).sample.chunk(2)
            lat = sched.step(uncond + guidance * (cond - uncond), t, lat).prev_sample
        img = vae.decode(lat / vae.config.scaling_factor).sample
        img = ((img.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)[:, 0].numpy()
        for r, im in zip(recs, img):
            save_png(im, out / f"{r['id']}.png")
    return time.perf_counter() - t0


def one_at_a_time(
    records: list[dict], model: Path, scheduler: str, options: dict, steps: int, guidance: float, out: Path
) -> float:
    t0 = time.perf_counter()
    backend = load_backend("builtin", model)
    for r in records:
        sampling = Sampling.of(scheduler, backend.scheduler_config, options, steps, guidance)
        save_png(backend.txt2img([r], sampling)[0], out / f"{r['id']}.png")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--model", type=Path, default=Dag().arg("pretrain", "--out"))
    ap.add_argument("--scheduler", default="ddim")
    ap.add_argument("--images", type=int, default=200)
    args = ap.parse_args()
    params = load_params(args.params)
    g = params.generate
    classes = json.loads((args.model / "model_index.json").read_text())["classes"]
    records = make_records(classes, params.prompts, params.seed)[: args.images]
    n = len(records)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prompts = tmp / "prompts.jsonl"
        prompts.write_text("".join(json.dumps(r) + "\n" for r in records))
        t_stage = stage(args.params, prompts, args.model, args.scheduler, tmp / "stage")
        t_hand = (
            hand_written(records, args.model, g.steps, g.guidance, g.batch_size, tmp / "hand")
            if args.scheduler == "ddim"
            else float("nan")
        )
        t_one = one_at_a_time(
            records, args.model, args.scheduler, params.schedulers[args.scheduler], g.steps, g.guidance, tmp / "one"
        )
    print(f"{n} images, {args.scheduler}, {g.steps} steps, batch {g.batch_size}, {torch.get_num_threads()} threads")
    print(f"txt2img stage:        {n / t_stage:7.1f} images/s")
    print(
        f"hand-written loop:    {n / t_hand:7.1f} images/s   stage/hand-written = {t_hand / t_stage:.2f} (goal >= 0.95)"
    )
    print(f"one image at a time:  {n / t_one:7.1f} images/s   stage/one-at-a-time = {t_one / t_stage:.2f} (goal >= 3)")


if __name__ == "__main__":
    main()
