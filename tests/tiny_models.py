"""Tiny randomly initialised models saved with ``save_pretrained`` (diffusers' own test style):
no downloads, seconds to build."""

from __future__ import annotations

import json
import re
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


def _ldm_unet_names(config: dict) -> list[tuple[str, str]]:
    """(diffusers, original LDM) key prefixes of a UNet2DConditionModel, for any block count and
    layers_per_block (the original Stable Diffusion layout: input_blocks, middle_block, output_blocks)."""
    n, lpb = len(config["block_out_channels"]), config["layers_per_block"]
    down_attn = ["CrossAttn" in t for t in config["down_block_types"]]
    up_attn = ["CrossAttn" in t for t in config["up_block_types"]]
    names = []
    for i in range(n):
        for j in range(lpb):
            names.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{i * (lpb + 1) + j + 1}.0."))
            if down_attn[i]:
                names.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{i * (lpb + 1) + j + 1}.1."))
        if i < n - 1:
            names.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{(i + 1) * (lpb + 1)}.0.op."))
        for j in range(lpb + 1):
            names.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{i * (lpb + 1) + j}.0."))
            if up_attn[i]:
                names.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{i * (lpb + 1) + j}.1."))
        if i < n - 1:
            names.append(
                (f"up_blocks.{i}.upsamplers.0.", f"output_blocks.{i * (lpb + 1) + lpb}.{2 if up_attn[i] else 1}.")
            )
    names += [("mid_block.attentions.0.", "middle_block.1."), ("mid_block.resnets.0.", "middle_block.0.")]
    names += [("mid_block.resnets.1.", "middle_block.2.")]
    return names


UNET_TOP = {
    "time_embedding.linear_1.": "time_embed.0.",
    "time_embedding.linear_2.": "time_embed.2.",
    "conv_in.": "input_blocks.0.0.",
    "conv_norm_out.": "out.0.",
    "conv_out.": "out.2.",
}
RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3"}
RESNET |= {"time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}


def _rename(key: str, prefixes: Any) -> str:
    for old, new in prefixes:
        if key.startswith(old):
            return new + key[len(old) :]
    return key


def _ldm_vae(state: dict, config: dict) -> dict:
    """An AutoencoderKL's weights under the original LDM (first_stage_model) names."""
    n = len(config["block_out_channels"])
    names = []
    for i in range(n):
        names.append((f"encoder.down_blocks.{i}.resnets.", f"encoder.down.{i}.block."))
        names.append((f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample."))
        names.append((f"decoder.up_blocks.{i}.resnets.", f"decoder.up.{n - 1 - i}.block."))
        names.append((f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{n - 1 - i}.upsample."))
    for part in ("encoder", "decoder"):
        names += [(f"{part}.mid_block.resnets.{j}.", f"{part}.mid.block_{j + 1}.") for j in range(2)]
        names += [
            (f"{part}.mid_block.attentions.0.", f"{part}.mid.attn_1."),
            (f"{part}.conv_norm_out.", f"{part}.norm_out."),
        ]
    attn = {"group_norm.": "norm.", "to_q.": "q.", "to_k.": "k.", "to_v.": "v.", "to_out.0.": "proj_out."}
    out = {}
    for key, value in state.items():
        new = _rename(key, names).replace("conv_shortcut", "nin_shortcut")
        if ".mid.attn_1." in new:
            head, _, tail = new.partition(".mid.attn_1.")
            tail = _rename(tail, attn.items())
            new = f"{head}.mid.attn_1.{tail}"
            if value.ndim == 2:  # the original attention uses 1x1 convolutions
                value = value[:, :, None, None]
        out["first_stage_model." + new] = value
    return out


def tiny_single_file(folder: Path, out: Path) -> Path:
    """The pipeline folder's UNet, VAE and text encoder as one original-format .safetensors checkpoint,
    as A1111 and ComfyUI users hold them (model.diffusion_model / first_stage_model /
    cond_stage_model.transformer names)."""
    from safetensors.torch import load_file, save_file

    unet_config = json.loads((folder / "unet" / "config.json").read_text())
    vae_config = json.loads((folder / "vae" / "config.json").read_text())
    unet = load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")
    vae = load_file(folder / "vae" / "diffusion_pytorch_model.safetensors")
    text = load_file(folder / "text_encoder" / "model.safetensors")
    blocks = _ldm_unet_names(unet_config)
    state = {}
    for key, value in unet.items():
        new = _rename(key, UNET_TOP.items())
        if new == key:
            resnet = re.fullmatch(r"(.*\.resnets\.\d+\.)(\w+)(\..*)", key)  # its layers have other names too
            if resnet:
                key = resnet.group(1) + RESNET.get(resnet.group(2), resnet.group(2)) + resnet.group(3)
            new = _rename(key, blocks)
        state["model.diffusion_model." + new] = value
    state |= _ldm_vae(vae, vae_config)
    # transformers 5 saves CLIPTextModel without its "text_model." prefix; SD 1.x files have it
    state |= {"cond_stage_model.transformer.text_model." + k.removeprefix("text_model."): v for k, v in text.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, out)
    return out


def tiny_lora(folder: Path, out: Path, seed: int = 0) -> Path:
    """A LoRA (rank 4, on the UNet's attention projections) for the tiny pipeline at ``folder``, trained
    by nobody: peft's layers with random up-projections, so it visibly changes the images; saved as
    diffusers' ``save_lora_weights`` writes one (what ``load_lora_weights`` and web UIs read)."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipe = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True)
    torch.manual_seed(seed)
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    for name, p in pipe.unet.named_parameters():
        if "lora_B" in name:  # peft starts B at zero (a no-op LoRA): make it do something
            torch.nn.init.normal_(p, std=0.5)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(pipe.unet))
    StableDiffusionPipeline.save_lora_weights(out.parent, unet_lora_layers=layers, weight_name=out.name)
    return out


def tiny_embedding(folder: Path, out: Path, seed: int = 0) -> Path:
    """A textual-inversion embedding (one vector, A1111's ``emb_params`` layout) for the tiny pipeline."""
    from safetensors.torch import save_file

    dim = json.loads((folder / "text_encoder" / "config.json").read_text())["hidden_size"]
    torch.manual_seed(seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({"emb_params": torch.randn(1, dim) * 3}, out)
    return out
