"""Stage ``pretrain``: train the builtin class-conditional latent diffusion model.

It stands in for a downloaded checkpoint: Stable Diffusion's structure in miniature — a tiny
``AutoencoderKL`` (image ↔ latents) and a class-embedded ``UNet2DModel`` trained to predict the noise
on those latents, with classifier-free guidance through a null class — trained only on the
pretraining pool, never on the train/val/test splits.
Inputs:  ``--pool`` (data/real/cls/pool), ``--classes`` (data/real/classes.json)
Outputs: ``--out`` (models/builtin): diffusers-format folder (``vae/``, ``unet/``, ``scheduler/``,
         ``model_index.json``, safetensors) and ``samples.png`` (one row per class, DDIM 25 steps);
         ``--metrics`` (final losses).
Params:  seed, data.image_size, data.channels, pretrain.*, launch.training.threads
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from diffusers import DDPMScheduler
from PIL import Image

from synthaug import checksums
from synthaug.cli import parse_args, pin_threads, run
from synthaug.diffusion import BuiltinModel, Sampling, from_uint8
from synthaug.errors import DataError
from synthaug.files import write_json
from synthaug.images import atomic_dir, contact_sheet, image_folder, load_array, save_png
from synthaug.layout import read_classes
from synthaug.params import load_params
from synthaug.pretraining import train_unet, train_vae

log = logging.getLogger("pretrain")
PREVIEW_PER_CLASS = 8


def write_model(model: BuiltinModel, noise_scheduler: DDPMScheduler, out: Path, guidance: float) -> None:
    """Save the model folder and its preview: 8 samples per class, DDIM 25 steps."""
    model.save(out, noise_scheduler)
    ddim = Sampling.of("ddim", model.scheduler_config, {}, steps=25, guidance=guidance)
    ids = [k for k in range(len(model.classes)) for _ in range(PREVIEW_PER_CLASS)]
    samples = model.generate(ids, list(range(len(ids))), ddim)
    tiles = [Image.fromarray(s) for s in samples]
    save_png(contact_sheet(tiles, PREVIEW_PER_CLASS, tile=48), out / "samples.png")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(__doc__, argv, "pool", "classes", "out", "metrics")
    params = load_params(args.params)
    pin_threads(params.launch.training.threads)  # results must not depend on the machine's cores
    p, d = params.pretrain, params.data
    torch.manual_seed(params.seed)
    torch.use_deterministic_algorithms(True)
    gen = torch.Generator().manual_seed(params.seed)
    classes = read_classes(args.classes)
    checksums.verify(args.pool)
    files = image_folder(args.pool, classes)
    if not files:
        raise DataError(f"{args.pool}: no images in the pretraining pool; run `dvc repro prepare` first")
    mode = "L" if d.channels == 1 else "RGB"
    images = from_uint8(np.stack([load_array(f, mode) for f, _ in files]))
    labels = torch.tensor([k for _, k in files])
    log.info("pretraining pool: %d images, %d classes, %s", len(files), len(classes), tuple(images.shape[1:]))
    t0 = time.perf_counter()
    vae, vae_mse = train_vae(images, p.vae, gen)
    with torch.inference_mode():
        post = [vae.encode(images[i : i + 256]).latent_dist for i in range(0, len(images), 256)]
        mean, std = torch.cat([q.mean for q in post]), torch.cat([q.std for q in post])
    scaling = float(1.0 / mean.std())  # as Stable Diffusion: unit-variance latents for the UNet
    vae.register_to_config(scaling_factor=scaling)
    # No x0 clipping: latents are unit-variance, not images in [-1, 1] (as in Stable Diffusion).
    noise_scheduler = DDPMScheduler(
        num_train_timesteps=p.train_timesteps, beta_schedule=p.beta_schedule, clip_sample=False
    )
    unet, unet_loss = train_unet(mean * scaling, std * scaling, labels, len(classes), p.unet, noise_scheduler, gen)
    log.info("trained in %.0f s (vae mse %.4f, unet loss %.4f)", time.perf_counter() - t0, vae_mse, unet_loss)
    model = BuiltinModel(vae, unet, dict(noise_scheduler.config), list(classes), d.image_size, d.channels)
    with atomic_dir(args.out) as tmp:
        write_model(model, noise_scheduler, tmp, p.preview_guidance)
    metrics = {"vae_mse": round(vae_mse, 6), "unet_loss": round(unet_loss, 6), "vae_scaling_factor": round(scaling, 6)}
    write_json(args.metrics, metrics)


if __name__ == "__main__":
    run(main)
