"""Training the builtin model's two parts (stage ``pretrain``): the autoencoder (image ↔ latents) and
the class-conditional UNet that predicts the noise on those latents, with classifier-free guidance
through a null class and an EMA copy of the weights. Deterministic for a given generator."""

from __future__ import annotations

import copy
import math

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DModel
from tqdm import tqdm


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
