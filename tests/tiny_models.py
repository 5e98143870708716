"""Tiny randomly initialised models saved with ``save_pretrained`` (diffusers' own test style):
no downloads, seconds to build."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

CHARS = "abcdefghijklmnopqrstuvwxyz"


def tiny_builtin(path: Path, classes: list[str], seed: int = 0) -> Path:
    """A random BuiltinModel folder (1 channel, 32 px → 8×8×4 latents)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DModel

    from synthaug.diffusion import BuiltinModel

    torch.manual_seed(seed)
    vae = AutoencoderKL(
        in_channels=1,
        out_channels=1,
        latent_channels=4,
        block_out_channels=(8, 8, 8),
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=32,
    )
    unet = UNet2DModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32),
        down_block_types=("DownBlock2D",) * 2,
        up_block_types=("UpBlock2D",) * 2,
        layers_per_block=1,
        num_class_embeds=len(classes) + 1,
        norm_num_groups=16,
    )
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    BuiltinModel(vae.eval(), unet.eval(), dict(scheduler.config), classes, 32, 1).save(path, scheduler)
    return path


def tiny_stable_diffusion(path: Path, seed: int = 0) -> Path:
    """A random Stable Diffusion 1.x-style pipeline folder: 64 px images, 32 px latents."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    tok_dir = path.parent / f"{path.name}-tokenizer"
    tok_dir.mkdir(parents=True, exist_ok=True)
    vocab = ["<|startoftext|>", "<|endoftext|>", "!", ","] + list(CHARS) + [c + "</w>" for c in CHARS] + [",</w>"]
    (tok_dir / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (tok_dir / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer.from_pretrained(tok_dir, model_max_length=77, pad_token="!")
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=77,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=2,
            projection_dim=32,
        )
    )
    unet = UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(32, 64),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=32,
        sample_size=64,
    )
    sd_pipeline(vae, text_encoder, tokenizer, unet).save_pretrained(path, safe_serialization=True)
    return path


def sd_pipeline(vae: Any, text_encoder: Any, tokenizer: Any, unet: Any) -> Any:
    """A Stable Diffusion 1.x pipeline of these parts with SD's own DDIM schedule and no safety checker
    (also bench/gpu_sampling.py's full-size random one)."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
