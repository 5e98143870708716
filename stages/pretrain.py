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

import argparse
import copy
import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DModel
from PIL import Image
from tqdm import tqdm

from synthaug.cli import pin_threads, run
from synthaug.diffusion import BuiltinModel, from_uint8, make_scheduler
from synthaug.errors import DataError
from synthaug.files import write_json
from synthaug.images import atomic_dir, contact_sheet, image_folder, load_array, save_png
from synthaug.params import load_params

log = logging.getLogger("pretrain")
PREVIEW_PER_CLASS = 8


def lr_at(step: int, total: int, base: float, warmup: int = 100) -> float:
    """Linear warm-up, then cosine decay to 10% of ``base``."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def batches(n: int, batch_size: int, steps: int, gen: torch.Generator):
    """Indices of ``steps`` batches from reshuffled epochs over ``n`` items."""
    order = torch.randperm(n, generator=gen)
    pos = 0
    for _ in range(steps):
        if pos + batch_size > n:
            order, pos = torch.randperm(n, generator=gen), 0
        yield order[pos : pos + batch_size]
        pos += batch_size


def train_vae(images: torch.Tensor, cfg, gen: torch.Generator) -> tuple[AutoencoderKL, float]:
    n_blocks = len(cfg.channels)
    vae = AutoencoderKL(
        in_channels=images.shape[1],
        out_channels=images.shape[1],
        latent_channels=cfg.latent_channels,
        down_block_types=("DownEncoderBlock2D",) * n_blocks,
        up_block_types=("UpDecoderBlock2D",) * n_blocks,
        block_out_channels=tuple(cfg.channels),
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=images.shape[-1],
    )
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.lr, weight_decay=0.0)
    bar = tqdm(batches(len(images), cfg.batch_size, cfg.steps, gen), total=cfg.steps, desc="vae", unit="step")
    loss_avg = 0.0
    for step, idx in enumerate(bar):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg.steps, cfg.lr)
        x = images[idx]
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample(generator=gen)).sample
        rec = torch.nn.functional.mse_loss(recon, x)
        loss = rec + cfg.kl_weight * posterior.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_avg = rec.item() if step == 0 else 0.98 * loss_avg + 0.02 * rec.item()
        bar.set_postfix(mse=f"{loss_avg:.4f}")
    return vae.eval(), loss_avg


def train_unet(
    latents_mean: torch.Tensor,
    latents_std: torch.Tensor,
    labels: torch.Tensor,
    n_classes: int,
    cfg,
    noise_scheduler: DDPMScheduler,
    gen: torch.Generator,
) -> tuple[UNet2DModel, float]:
    n_blocks = len(cfg.channels)
    unet = UNet2DModel(
        sample_size=latents_mean.shape[-1],
        in_channels=latents_mean.shape[1],
        out_channels=latents_mean.shape[1],
        block_out_channels=tuple(cfg.channels),
        layers_per_block=cfg.layers_per_block,
        down_block_types=("DownBlock2D",) * n_blocks,
        up_block_types=("UpBlock2D",) * n_blocks,
        num_class_embeds=n_classes + 1,
        norm_num_groups=16,
    )
    ema = copy.deepcopy(unet).requires_grad_(False)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=0.0)
    bar = tqdm(batches(len(labels), cfg.batch_size, cfg.steps, gen), total=cfg.steps, desc="unet", unit="step")
    loss_avg = 0.0
    for step, idx in enumerate(bar):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg.steps, cfg.lr)
        z = latents_mean[idx] + latents_std[idx] * torch.randn(latents_mean[idx].shape, generator=gen)
        noise = torch.randn(z.shape, generator=gen)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(idx),), generator=gen)
        y = labels[idx].clone()
        y[torch.rand(len(idx), generator=gen) < cfg.cond_drop] = n_classes  # null class: guidance
        pred = unet(noise_scheduler.add_noise(z, noise, t), t, class_labels=y).sample
        loss = torch.nn.functional.mse_loss(pred, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        decay = min(cfg.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema.parameters(), unet.parameters()):
                e.lerp_(p, 1 - decay)
        loss_avg = loss.item() if step == 0 else 0.98 * loss_avg + 0.02 * loss.item()
        bar.set_postfix(loss=f"{loss_avg:.4f}")
    return ema.eval(), loss_avg


def write_model(model: BuiltinModel, noise_scheduler: DDPMScheduler, out: Path, guidance: float) -> None:
    """Save the model folder and its preview: 8 samples per class, DDIM 25 steps."""
    model.save(out, noise_scheduler)
    ddim, _ = make_scheduler("ddim", model.scheduler_config, {})
    ids = [k for k in range(len(model.classes)) for _ in range(PREVIEW_PER_CLASS)]
    samples = model.generate(ids, list(range(len(ids))), ddim, steps=25, guidance=guidance)
    tiles = [Image.fromarray(s) for s in samples]
    save_png(contact_sheet(tiles, PREVIEW_PER_CLASS, tile=48), out / "samples.png")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, required=True)
    ap.add_argument("--pool", type=Path, required=True)
    ap.add_argument("--classes", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--metrics", type=Path, required=True)
    args = ap.parse_args(argv)
    params = load_params(args.params)
    pin_threads(params.launch.training.threads)  # results must not depend on the machine's cores
    p, d = params.pretrain, params.data
    torch.manual_seed(params.seed)
    torch.use_deterministic_algorithms(True)
    gen = torch.Generator().manual_seed(params.seed)
    classes = json.loads(args.classes.read_text())
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
