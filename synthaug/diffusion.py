"""Diffusion backends shared by the generation stages and the benches.

- ``SCHEDULERS``: name → diffusers scheduler class; :func:`make_scheduler` builds one with
  ``cls.from_config(base_config, **options)`` (schedulers are data).
- :class:`BuiltinModel`: the pipeline's own class-conditional latent diffusion model (a tiny
  ``AutoencoderKL`` + a class-embedded ``UNet2DModel`` on its latents, classifier-free guidance via
  a null class) — Stable Diffusion's structure in miniature, saved as a diffusers-format folder.
  Its :meth:`~BuiltinModel.generate` is the one generic sampling loop (txt2img and SDEdit img2img)
  that is correct for every scheduler in the registry.
- :func:`load_backend`: one loading path for a local folder or a hub id; text-conditioned
  checkpoints go through diffusers' own Stable Diffusion pipelines. :func:`backend_for` loads
  the one the ``generate`` params name, on a launched process's own device.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import diffusers
import numpy as np
import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DModel

from synthaug import registry
from synthaug.errors import ModelError

if TYPE_CHECKING:
    from synthaug.params import GenerateParams

SCHEDULERS: dict[str, type] = {name: getattr(diffusers, cls) for name, (cls, _) in registry.SCHEDULERS.items()}
# Options that are not scheduler config keys but arguments of ``step`` (DDIM's η).
STEP_OPTIONS = {"eta"}
BUILTIN_CLASS = "synthaug.BuiltinModel"


def make_scheduler(name: str, base_config: dict, options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """A fresh scheduler ``name`` built from ``base_config`` plus ``options``; returns it and the
    keyword arguments its ``step`` takes (e.g. ``eta`` for DDIM)."""
    if name not in SCHEDULERS:  # params.yaml's names are checked, with a suggestion, when it is loaded
        raise ModelError(f"unknown scheduler '{name}' (known: {', '.join(SCHEDULERS)})")
    cls = SCHEDULERS[name]
    config_options = {k: v for k, v in options.items() if k not in STEP_OPTIONS}
    step_kwargs = {k: v for k, v in options.items() if k in STEP_OPTIONS}
    accepted = set(inspect.signature(cls.__init__).parameters)
    unknown = sorted(set(config_options) - accepted)
    if unknown:
        raise ModelError(f"scheduler '{name}' ({cls.__name__}) has no option {unknown[0]!r}")
    for key in step_kwargs:
        if key not in inspect.signature(cls.step).parameters:
            raise ModelError(f"scheduler '{name}' ({cls.__name__}) has no step option {key!r}")
    return cls.from_config(base_config, **config_options), step_kwargs


@dataclass(frozen=True)
class Sampling:
    """How a batch is sampled: a fresh scheduler with its step options, the number of steps, the
    classifier-free guidance scale and (img2img) the SDEdit strength. ``on_step(done, total)`` is
    called after every denoising step (a progress bar); an exception raised there stops sampling."""

    scheduler: Any
    steps: int
    guidance: float
    step_kwargs: dict[str, Any] = field(default_factory=dict)
    strength: float = 1.0
    on_step: Callable[[int, int], None] | None = None

    @classmethod
    def of(cls, name: str, base_config: dict, options: dict[str, Any], steps: int, guidance: float, **kw) -> Sampling:
        """Scheduler ``name`` made fresh from ``options`` (:func:`make_scheduler`): multistep
        schedulers keep state, so every batch gets its own."""
        scheduler, step_kwargs = make_scheduler(name, base_config, options)
        return cls(scheduler, steps, guidance, step_kwargs, **kw)


def step_accepts_generator(scheduler: Any) -> bool:
    return "generator" in inspect.signature(scheduler.step).parameters


def generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One generator per image, so an image depends on its own seed, not its batch position."""
    return [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] NCHW tensor → NHWC (or NHW for one channel) uint8 array."""
    x = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return x[..., 0] if x.shape[-1] == 1 else x


def from_uint8(images: np.ndarray) -> torch.Tensor:
    """NHW or NHWC uint8 → [-1, 1] NCHW float tensor."""
    x = torch.from_numpy(np.asarray(images, dtype=np.float32) / 127.5 - 1.0)
    return x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)


@dataclass
class BuiltinModel:
    """Class-conditional latent diffusion: ``vae`` + ``unet`` (class embeddings, null class last)."""

    vae: AutoencoderKL
    unet: UNet2DModel
    scheduler_config: dict
    classes: list[str]
    image_size: int
    channels: int
    compiled: Any = None  # torch.compile(unet), when asked for
    text_conditioned = False  # takes the class from the prompt record, not the prompt text

    @property
    def null_class(self) -> int:
        return len(self.classes)

    @classmethod
    def load(cls, path: Path) -> BuiltinModel:
        index = json.loads((path / "model_index.json").read_text())
        vae = AutoencoderKL.from_pretrained(path, subfolder="vae", use_safetensors=True, local_files_only=True)
        unet = UNet2DModel.from_pretrained(path, subfolder="unet", use_safetensors=True, local_files_only=True)
        config = DDPMScheduler.load_config(path, subfolder="scheduler", local_files_only=True)
        model = cls(vae.eval(), unet.eval(), dict(config), index["classes"], index["image_size"], index["channels"])
        return model

    def save(self, path: Path, scheduler: Any) -> None:
        self.vae.save_pretrained(path / "vae", safe_serialization=True)
        self.unet.save_pretrained(path / "unet", safe_serialization=True)
        scheduler.save_pretrained(path / "scheduler")
        index = {
            "_class_name": BUILTIN_CLASS,
            "classes": self.classes,
            "image_size": self.image_size,
            "channels": self.channels,
            "null_class": self.null_class,
        }
        (path / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")

    @torch.inference_mode()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(device=self.vae.device, dtype=self.vae.dtype)
        return (self.vae.encode(x).latent_dist.mode() * self.vae.config.scaling_factor).float()

    @torch.inference_mode()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents.to(self.vae.dtype) / self.vae.config.scaling_factor).sample.float()

    def txt2img(self, records: Sequence[dict], sampling: Sampling) -> np.ndarray:
        return self.generate([r["class"] for r in records], [r["seed"] for r in records], sampling)

    def img2img(self, images: np.ndarray, records: Sequence[dict], sampling: Sampling) -> np.ndarray:
        classes, seeds = [r["class"] for r in records], [r["seed"] for r in records]
        return self.generate(classes, seeds, sampling, init_images=from_uint8(images))

    @torch.inference_mode()
    def generate(
        self,
        class_ids: Sequence[int],
        seeds: Sequence[int],
        sampling: Sampling,
        init_images: torch.Tensor | None = None,
    ) -> np.ndarray:
        """Sample one image per (class, seed): txt2img from noise, or SDEdit img2img from
        ``init_images`` ([-1, 1] NCHW) noised to ``sampling.strength``. Returns uint8 images."""
        scheduler, steps, strength = sampling.scheduler, sampling.steps, sampling.strength
        gens = generators(seeds)
        device = self.unet.device
        n = len(class_ids)
        latent_size = self.unet.config.sample_size
        shape = (1, self.unet.config.in_channels, latent_size, latent_size)
        dtype = self.unet.dtype  # latents and scheduler arithmetic stay float32; only the UNet runs in dtype
        noise = torch.cat([torch.randn(shape, generator=g) for g in gens]).to(device=device)
        scheduler.set_timesteps(steps, device=device)  # fresh state: multistep schedulers remember earlier runs
        timesteps = scheduler.timesteps
        if init_images is None:
            latents = noise * scheduler.init_noise_sigma
        else:
            # Skip the first (1 - strength) of the schedule, exactly as diffusers' img2img pipeline does.
            t_start = max(steps - registry.effective_steps(steps, strength), 0)
            timesteps = timesteps[t_start * scheduler.order :]
            if hasattr(scheduler, "set_begin_index"):
                scheduler.set_begin_index(t_start * scheduler.order)
            if len(timesteps) == 0:
                raise ModelError(f"strength {strength} with {steps} steps leaves no denoising step; raise either")
            latents = scheduler.add_noise(self.encode(init_images), noise, timesteps[:1].repeat(n))
        labels = torch.tensor(list(class_ids), dtype=torch.long, device=device)
        both = torch.cat([labels, torch.full_like(labels, self.null_class)])
        extra = dict(sampling.step_kwargs)
        if step_accepts_generator(scheduler):
            extra["generator"] = gens
        unet = self.compiled if self.compiled is not None else self.unet
        for i, t in enumerate(timesteps):
            x = scheduler.scale_model_input(torch.cat([latents, latents]), t)
            cond, uncond = unet(x.to(dtype), t, class_labels=both).sample.float().chunk(2)
            eps = uncond + sampling.guidance * (cond - uncond)
            latents = scheduler.step(eps, t, latents, **extra).prev_sample
            if sampling.on_step is not None:
                sampling.on_step(i + 1, len(timesteps))
        return to_uint8(self.decode(latents))


class DiffusersBackend:
    """A text-conditioned diffusers checkpoint (Stable Diffusion 1.x/2.x/XL/turbo), run through
    diffusers' own txt2img and img2img pipelines."""

    text_conditioned = True
    channels = 3

    def __init__(self, pipe: Any, size: int):
        from diffusers import AutoPipelineForImage2Image

        self.pipe = pipe
        self.img2img_pipe = AutoPipelineForImage2Image.from_pipe(pipe)
        for p in (self.pipe, self.img2img_pipe):
            p.set_progress_bar_config(disable=True)
        self.scheduler_config = dict(pipe.scheduler.config)
        self.image_size = size

    def _run(self, pipe: Any, records: Sequence[dict], sampling: Sampling, **kwargs: Any) -> np.ndarray:
        pipe.scheduler = sampling.scheduler
        if sampling.on_step is not None:
            total = registry.effective_steps(sampling.steps, sampling.strength)  # img2img skips the rest

            def on_step_end(_pipe: Any, i: int, _t: Any, tensors: dict) -> dict:
                sampling.on_step(i + 1, total)
                return tensors

            kwargs["callback_on_step_end"] = on_step_end
        out = pipe(
            generator=generators([r["seed"] for r in records]),
            prompt=[r["prompt"] for r in records],
            negative_prompt=[r["negative_prompt"] for r in records],
            num_inference_steps=sampling.steps,
            guidance_scale=sampling.guidance,
            output_type="np",
            **kwargs,
            **sampling.step_kwargs,
        ).images
        return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)

    def txt2img(self, records: Sequence[dict], sampling: Sampling) -> np.ndarray:
        return self._run(self.pipe, records, sampling, height=self.image_size, width=self.image_size)

    def img2img(self, images: np.ndarray, records: Sequence[dict], sampling: Sampling) -> np.ndarray:
        from PIL import Image

        pictures = [Image.fromarray(im).convert("RGB") for im in images]
        return self._run(self.img2img_pipe, records, sampling, image=pictures, strength=sampling.strength)


Backend = BuiltinModel | DiffusersBackend


def _looks_like_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not spec.startswith((".", "~"))


def load_backend(
    spec: str,
    builtin_dir: Path,
    *,
    offline: bool = True,
    device: str = "cpu",
    dtype: str = "float32",
    size: int | None = None,
    safety_checker: bool = False,
    compile: bool = False,
    attention_slicing: bool = False,
    model_config: str | None = None,
    adapters: Sequence[dict[str, Any]] = (),
) -> Backend:
    """One loading path: ``builtin`` (the pipeline's own model), a local diffusers folder, a hub id, or
    a single-file ``.safetensors`` checkpoint (its architecture from ``model_config``); then the LoRA
    and textual-inversion ``adapters`` (synthaug.params.check_adapter's entries). ``dtype`` is the
    UNet's (the builtin VAE stays in float32: it costs little, and float16 decodes can overflow;
    diffusers' SDXL pipelines upcast their VAE where its config sets force_upcast); ``compile`` wraps
    the UNet in ``torch.compile``; ``attention_slicing`` trades speed for GPU memory."""
    path = Path(builtin_dir) if spec == "builtin" else Path(spec)
    index = None
    if path.is_dir():
        index_file = path / "model_index.json"
        if not index_file.is_file():
            raise ModelError(f"{path}: not a diffusers model folder (no model_index.json)")
        index = json.loads(index_file.read_text())
        if index.get("_class_name") == BUILTIN_CLASS:
            if adapters:
                raise ModelError(f"{path}: the builtin model takes no LoRA or textual-inversion adapters")
            model = BuiltinModel.load(path)
            model.vae.to(device=device)
            model.unet.to(device=device, dtype=getattr(torch, dtype))
            if compile:
                model.compiled = torch.compile(model.unet)
            return model
    elif spec == "builtin":
        raise ModelError(f"{path}: the builtin model is missing; run `dvc repro pretrain`")
    elif path.suffix in (".ckpt", ".pt", ".pth", ".bin"):
        raise ModelError(f"{spec}: a pickle can run code when loaded; convert it to .safetensors first")
    elif not path.is_file() and not _looks_like_hub_id(spec):
        raise ModelError(
            f"{spec}: model not found (give a local diffusers folder, a .safetensors file or a hub id like org/name)"
        )
    options = dict(device=device, dtype=dtype, safety_checker=safety_checker, compile=compile)
    pipe = _load_diffusers(spec, index, offline, model_config, attention_slicing=attention_slicing, **options)
    for i, adapter in enumerate(adapters):
        _load_adapter(pipe, adapter, i)
    loras = [(f"lora{i}", a["scale"]) for i, a in enumerate(adapters) if "lora" in a]
    if loras:
        pipe.set_adapters([name for name, _ in loras], adapter_weights=[scale for _, scale in loras])
    default = pipe.unet.config.sample_size * pipe.vae_scale_factor
    return DiffusersBackend(pipe, size or default)


def _single_file_config(spec: str, model_config: str | None, offline: bool) -> str:
    """The diffusers folder (or, online, hub id) whose configs describe a single file's architecture:
    ``model_config``, else the one diffusers infers from the file's keys if the Hugging Face cache holds it."""
    if model_config is not None:
        if Path(model_config).is_dir() or not offline:
            return model_config
    from diffusers.loaders.single_file_utils import fetch_diffusers_config, load_single_file_checkpoint
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    repo = model_config or fetch_diffusers_config(load_single_file_checkpoint(spec))["pretrained_model_name_or_path"]
    try:  # configs only, as diffusers' own from_single_file fetches them
        return snapshot_download(
            repo, allow_patterns=["*.json", "**/*.json", "*.txt", "**/*.txt"], local_files_only=True
        )
    except LocalEntryNotFoundError:
        if not offline:
            return repo
        raise ModelError(
            f"{spec}: a single file holds weights, not its architecture, and {repo}'s configs are not in the "
            "local Hugging Face cache; set generate.model_config to a local diffusers folder of the same kind "
            "(one saved with save_pretrained), or fetch them once with generate.offline: false"
        ) from None


def _pipeline(spec: str, index: dict | None, offline: bool, model_config: str | None, kwargs: dict) -> Any:
    """The diffusers text-to-image pipeline of a folder or hub id (its auto pipeline), or of a single
    file (the pipeline class its config names, ``from_single_file`` with that config, never a download
    while offline: diffusers would otherwise fetch missing configs from the hub)."""
    from diffusers import AutoPipelineForText2Image

    if not Path(spec).is_file():
        return AutoPipelineForText2Image.from_pretrained(str(spec), **kwargs)
    config = _single_file_config(spec, model_config, offline)
    name = json.loads((Path(config) / "model_index.json").read_text())["_class_name"] if Path(config).is_dir() else None
    cls = getattr(diffusers, name or "StableDiffusionPipeline", None)
    if cls is None or not hasattr(cls, "from_single_file"):
        raise ModelError(f"{config}: its pipeline {name} cannot load a single-file checkpoint")
    kwargs = {k: v for k, v in kwargs.items() if k != "use_safetensors"}
    return cls.from_single_file(spec, config=config, torch_dtype=kwargs.pop("dtype"), **kwargs)


def _load_diffusers(
    spec: str,
    index: dict | None,
    offline: bool,
    model_config: str | None,
    *,
    device: str,
    dtype: str,
    safety_checker: bool,
    compile: bool,
    attention_slicing: bool,
) -> Any:
    """A Stable Diffusion-style pipeline (folder, cached hub id or single file) on ``device``;
    ``index``: the folder's model_index.json (None for a hub id or file)."""
    if not offline:
        from synthaug.offline import allow_hub

        allow_hub()

    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()  # our own tqdm bar counts images
    kwargs: dict[str, Any] = dict(local_files_only=offline, use_safetensors=True, dtype=getattr(torch, dtype))
    if not safety_checker and (index is None or "safety_checker" in index):
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    try:
        pipe = _pipeline(spec, index, offline, model_config, kwargs)
    except ModelError:
        raise
    except OSError as exc:
        hint = " (generate.offline is true: download it once with generate.offline: false)" if offline else ""
        raise ModelError(f"{spec}: cannot load the diffusers checkpoint{hint}: {str(exc).splitlines()[0]}") from None
    except ValueError as exc:
        raise ModelError(f"{spec}: not a text-to-image checkpoint this pipeline can run: {exc}") from None
    pipe.to(device)
    if attention_slicing:
        pipe.enable_attention_slicing()
    if compile:
        pipe.unet = torch.compile(pipe.unet)
    return pipe


def _load_adapter(pipe: Any, adapter: dict[str, Any], i: int) -> None:
    """A LoRA (diffusers' ``load_lora_weights``, through peft) or a textual inversion (its token)."""
    kind = "lora" if "lora" in adapter else "textual_inversion"
    path = Path(adapter[kind])
    if path.suffix != ".safetensors" or not path.is_file():
        raise ModelError(f"{path}: an adapter must be an existing .safetensors file")
    try:
        if kind == "lora":
            pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=f"lora{i}")
        else:
            pipe.load_textual_inversion(str(path), token=adapter["token"])
    except (ValueError, KeyError, RuntimeError, OSError) as exc:
        raise ModelError(f"{path}: cannot load it as a {kind.replace('_', ' ')} adapter of this model: {exc}") from None


def backend_for(g: GenerateParams, builtin_dir: Path, group: Any = None) -> Backend:
    """The backend the ``generate`` params describe; a process that a launcher started takes its
    own device from its ``group`` (synthaug.launch.process_group), e.g. ``cuda:3``."""
    device = str(group.device) if group is not None and group.num_processes > 1 else g.device
    return load_backend(
        g.model,
        builtin_dir,
        offline=g.offline,
        device=device,
        dtype=g.dtype,
        size=g.size,
        safety_checker=g.safety_checker,
        compile=g.compile,
        attention_slicing=g.attention_slicing,
        model_config=g.model_config,
        adapters=g.adapters,
    )
