"""Typed, validated view of ``params.yaml`` — the one place that knows its schema.

Every section is a frozen dataclass; :func:`load_params` converts the whole file before any stage
does work, rejecting wrong types, out-of-range values, missing keys and unknown keys (with a
"did you mean ..." suggestion). Values live in ``params.yaml`` only: fields have no defaults here,
so a value is never written twice. Bounds live in field metadata (``ge``/``gt``/``le``/``lt``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from synthaug import registry
from synthaug.errors import UserError

BASELINE = "baseline"  # the variant every gain is measured against (real data only; required below)


class ParamsError(UserError):
    """A params.yaml value that the user must fix; the message names the key."""


def bounded(**bounds: float) -> Any:
    """A required field with numeric bounds, e.g. ``bounded(ge=1)``."""
    return field(metadata=bounds)


# ---------------------------------------------------------------------------------------------
# Schema


@dataclass(frozen=True)
class DataParams:
    source: Literal["embedded", "folders"]
    image_size: int = bounded(ge=8, le=1024)
    channels: Literal[1, 3]
    det_image_size: int = bounded(ge=32, le=2048)


@dataclass(frozen=True)
class DetectionPrepareParams:
    train_images: int = bounded(ge=1)
    val_images: int = bounded(ge=1)
    test_images: int = bounded(ge=1)
    pool_images: int = bounded(ge=1)
    max_objects: int = bounded(ge=1, le=64)
    min_object_size: float = bounded(gt=0, le=1)
    max_object_size: float = bounded(gt=0, le=1)
    max_iou: float = bounded(ge=0, le=1)
    backgrounds: tuple[str, ...]

    def validate(self, where: str) -> None:
        if self.min_object_size > self.max_object_size:
            raise ParamsError(
                f"{where}.min_object_size: {self.min_object_size} is larger than "
                f"{where}.max_object_size ({self.max_object_size}); swap them"
            )


@dataclass(frozen=True)
class PrepareParams:
    pool_per_class: int = bounded(ge=0)
    judge_per_class: int = bounded(ge=1)
    shots_per_class: int = bounded(ge=1)
    val_per_class: int = bounded(ge=1)
    test_per_class: int = bounded(ge=1)
    det: DetectionPrepareParams


@dataclass(frozen=True)
class VaeParams:
    channels: tuple[int, ...]
    latent_channels: int = bounded(ge=1, le=16)
    steps: int = bounded(ge=1)
    batch_size: int = bounded(ge=1)
    lr: float = bounded(gt=0, lt=1)
    kl_weight: float = bounded(ge=0)

    def validate(self, where: str) -> None:
        if not self.channels or any(c < 8 or c % 8 for c in self.channels):
            raise ParamsError(f"{where}.channels: {list(self.channels)} must be multiples of 8 (group norm of 8)")


@dataclass(frozen=True)
class UnetParams:
    channels: tuple[int, ...]
    layers_per_block: int = bounded(ge=1, le=4)
    steps: int = bounded(ge=1)
    batch_size: int = bounded(ge=1)
    lr: float = bounded(gt=0, lt=1)
    ema_decay: float = bounded(ge=0, lt=1)
    cond_drop: float = bounded(ge=0, lt=1)

    def validate(self, where: str) -> None:
        if not self.channels or any(c < 16 or c % 16 for c in self.channels):
            raise ParamsError(f"{where}.channels: {list(self.channels)} must be multiples of 16 (group norm of 16)")


@dataclass(frozen=True)
class PretrainParams:
    train_timesteps: int = bounded(ge=10)
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"]
    preview_guidance: float = bounded(ge=0)
    vae: VaeParams
    unet: UnetParams


@dataclass(frozen=True)
class PromptsParams:
    templates: tuple[str, ...]
    styles: tuple[str, ...]
    negative_prompt: str
    per_class: int = bounded(ge=1)

    def validate(self, where: str) -> None:
        for i, t in enumerate(self.templates):
            if "{name}" not in t:
                raise ParamsError(f"{where}.templates[{i}]: {t!r} must contain '{{name}}' (the class name)")
        if not self.templates or not self.styles:
            raise ParamsError(f"{where}: templates and styles need at least one entry ('' is a valid style)")


SINGLE_FILE_SUFFIXES = (".safetensors",)  # a single-file checkpoint (A1111, ComfyUI, InvokeAI folders)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
ADAPTER_KEYS = {"lora": "scale", "textual_inversion": "token"}  # each kind's file key → its other key


def check_adapter(adapter: dict[str, Any], where: str) -> None:
    """One ``generate.adapters`` entry: ``{lora: FILE, scale: S}`` or ``{textual_inversion: FILE, token: T}``,
    FILE an existing ``.safetensors`` file."""
    kinds = [k for k in ADAPTER_KEYS if k in adapter]
    if len(kinds) != 1 or set(adapter) != {kinds[0], ADAPTER_KEYS[kinds[0]]}:
        raise ParamsError(
            f"{where}: {adapter!r} must be {{lora: FILE.safetensors, scale: 0.8}} or "
            '{textual_inversion: FILE.safetensors, token: "<name>"}'
        )
    kind = kinds[0]
    path, other = adapter[kind], adapter[ADAPTER_KEYS[kind]]
    if not isinstance(path, str) or not path.endswith(".safetensors"):
        raise ParamsError(f"{where}.{kind}: {path!r} must be a .safetensors file (pickles can run code when loaded)")
    if not Path(path).is_file():
        raise ParamsError(f"{where}.{kind}: {path}: no such file")
    if kind == "lora" and (isinstance(other, bool) or not isinstance(other, (int, float)) or not -8 <= other <= 8):
        raise ParamsError(f"{where}.scale: {other!r} must be a number in [-8, 8] (1.0: the LoRA as trained)")
    if kind == "textual_inversion" and (not isinstance(other, str) or not other.strip()):
        raise ParamsError(f'{where}.token: {other!r} must be the word the prompts use for it, e.g. "<my-style>"')


@dataclass(frozen=True)
class GenerateParams:
    model: str
    model_config: str | None
    adapters: tuple[dict[str, Any], ...]
    offline: bool
    device: str
    dtype: Literal["float32", "float16", "bfloat16"]
    batch_size: int = bounded(ge=1)
    steps: int = bounded(ge=1, le=1000)
    guidance: float = bounded(ge=0)
    size: int | None = bounded(ge=8, le=4096)
    safety_checker: bool
    compile: bool
    attention_slicing: bool

    def validate(self, where: str) -> None:
        if not re.fullmatch(r"cpu|cuda(:\d+)?|mps|xpu(:\d+)?", self.device):
            raise ParamsError(f"{where}.device: {self.device!r} is not a torch device; use cpu, cuda, cuda:1 or mps")
        if self.size is not None and self.model == "builtin":
            raise ParamsError(
                f"{where}.size: {self.size} — the builtin model samples at data.image_size, the size "
                "it was pretrained at; set size: null (it is a text-conditioned checkpoint's knob)"
            )
        single_file = self.model.endswith(SINGLE_FILE_SUFFIXES)
        if self.model.endswith(PICKLE_SUFFIXES):
            raise ParamsError(
                f"{where}.model: {self.model} is a pickle, which can run code when loaded; convert it to "
                ".safetensors (e.g. with diffusers' scripts) and point generate.model at that"
            )
        if single_file and not Path(self.model).is_file():
            raise ParamsError(f"{where}.model: {self.model}: no such file")
        if self.model_config is not None and not single_file:
            raise ParamsError(
                f"{where}.model_config: only a single-file checkpoint (generate.model: <file>.safetensors) "
                "takes one; a folder or hub id has its own config, so set model_config: null"
            )
        if self.adapters and self.model == "builtin":
            raise ParamsError(
                f"{where}.adapters: LoRA and textual inversion adapt a text-conditioned checkpoint; the builtin "
                "model has no text encoder or attention to adapt (set adapters: [] or point generate.model at one)"
            )
        for i, adapter in enumerate(self.adapters):
            check_adapter(adapter, f"{where}.adapters[{i}]")
        if self.size is not None and self.size % 8:
            raise ParamsError(
                f"{where}.size: {self.size} is not a multiple of 8 (Stable Diffusion's VAE halves the "
                f"side 3 times); use {self.size // 8 * 8 or 8} or {self.size // 8 * 8 + 8}, or null for "
                "the model's own size"
            )


@dataclass(frozen=True)
class Txt2ImgParams:
    schedulers: tuple[str, ...]


@dataclass(frozen=True)
class Img2ImgParams:
    strengths: tuple[float, ...]
    scheduler: str
    scheduler_options: dict[str, Any]
    variants_per_source: int = bounded(ge=1)
    det: bool

    def validate(self, where: str) -> None:
        for i, s in enumerate(self.strengths):
            if not 0 < s <= 1:
                raise ParamsError(f"{where}.strengths[{i}]: {s} is outside (0, 1]; 1.0 ignores the source image")


@dataclass(frozen=True)
class VariantParams:
    source: str
    ratio: float = bounded(ge=0, le=16)
    # at most this many of the source's classification images per class (the first, by name: so a
    # smaller count is a subset of a larger one, as a curve of real_pool sizes needs); null: all
    per_class: int | None = field(default=None, metadata={"ge": 1})
    # the regimes it trains in, a subset of trials.shots (null: every one): the smaller real pools
    # need only the regime their curve is read in
    shots: tuple[int, ...] | None = None
    # more ResNet seeds in some regimes, where trials.resnet_seeds' are too few to decide a comparison
    # (bench/seeds_needed.py): {shots: n} trains n seeds there, trials.resnet_seeds continued by the
    # next integers; the baseline must train at least as many there, so every run has its pair
    seeds: dict[int, int] | None = None

    def validate(self, where: str) -> None:
        kind, _, name = self.source.partition("/")
        if self.source not in ("none", "real/pool") and (kind not in ("txt2img", "img2img") or not name):
            raise ParamsError(
                f"{where}.source: {self.source!r} must be none, real/pool, txt2img/<scheduler> or img2img/<strength>"
            )
        if self.source == "none" and self.ratio != 0:
            raise ParamsError(f"{where}.ratio: {self.ratio} synthetic per real image, but source is none; set it to 0")
        if self.source == "none" and self.per_class is not None:
            raise ParamsError(f"{where}.per_class: {self.per_class}, but source is none; remove it")


@dataclass(frozen=True)
class RealPoolParams:
    per_class: int = bounded(ge=1)


@dataclass(frozen=True)
class AssembleParams:
    paste_per_image: int = bounded(ge=1, le=16)
    paste_threshold: float = bounded(gt=0, lt=1)


@dataclass(frozen=True)
class ResnetBudget:
    """A ResNet and its fixed training budget (shared by train_resnet and judge)."""

    arch: Literal["resnet18", "resnet34", "resnet50"]
    weights: Literal["none", "imagenet"]
    small_stem: bool
    steps: int = bounded(ge=1)
    batch_size: int = bounded(ge=2)
    lr: float = bounded(gt=0, lt=10)
    momentum: float = bounded(ge=0, lt=1)
    weight_decay: float = bounded(ge=0, lt=1)
    warmup_steps: int = bounded(ge=0)
    eval_every: int = bounded(ge=1)
    max_shift: int = bounded(ge=0, le=16)


@dataclass(frozen=True)
class TrainResnetParams(ResnetBudget):
    device: str

    def validate(self, where: str) -> None:
        if not re.fullmatch(r"cpu|cuda", self.device):
            raise ParamsError(
                f"{where}.device: {self.device!r} must be cpu or cuda (a launcher picks each process's GPU)"
            )


def _check_seeds(seeds: tuple[int, ...], where: str) -> None:
    if not seeds or len(set(seeds)) != len(seeds) or any(not 0 <= s < 2**32 for s in seeds):
        raise ParamsError(f"{where}: {list(seeds)} must be distinct seeds in 0..2**32-1, at least one")


@dataclass(frozen=True)
class TrialsParams:
    """The training stages' axes — which runs there are — apart from how each one trains (the
    train_resnet and train_yolo budgets), so that dvc.yaml declares each budget whole."""

    shots: tuple[int, ...]  # the regimes: real train images per class each ResNet run sees
    resnet_seeds: tuple[int, ...]
    yolo_seeds: tuple[int, ...]
    yolo_variants: tuple[str, ...]

    def validate(self, where: str) -> None:
        if not self.shots or any(k < 1 for k in self.shots) or list(self.shots) != sorted(set(self.shots)):
            raise ParamsError(f"{where}.shots: {list(self.shots)} must be increasing shot counts (>= 1), at least one")
        _check_seeds(self.resnet_seeds, f"{where}.resnet_seeds")
        _check_seeds(self.yolo_seeds, f"{where}.yolo_seeds")


@dataclass(frozen=True)
class FilterParams:
    min_confidence: float = bounded(ge=0, le=1)


@dataclass(frozen=True)
class QualityParams:
    box_iou: float = bounded(gt=0, le=1)
    detector_conf: float = bounded(gt=0, lt=1)


@dataclass(frozen=True)
class StudyParams:
    steps: tuple[int, ...]
    per_class: int = bounded(ge=2)

    def validate(self, where: str) -> None:
        if not self.steps or any(not 1 <= s <= 1000 for s in self.steps) or len(set(self.steps)) != len(self.steps):
            raise ParamsError(f"{where}.steps: {list(self.steps)} must be distinct step counts in 1..1000")


@dataclass(frozen=True)
class ReportParams:
    gallery_per_class: int = bounded(ge=1, le=16)


@dataclass(frozen=True)
class YoloBudgetParams:
    """A detector's training budget (shared by pretrain_yolo and train_yolo); see synthaug/detector.py."""

    epochs: int = bounded(ge=1)
    close_mosaic: int = bounded(ge=0)
    warmup_epochs: float = bounded(ge=0)
    batch: int = bounded(ge=1)
    imgsz: int = bounded(ge=32, le=2048)
    optimizer: Literal["SGD", "Adam", "AdamW", "auto"]
    lr0: float = bounded(gt=0, lt=1)
    mosaic: float = bounded(ge=0, le=1)
    fliplr: float = bounded(ge=0, le=1)

    def validate(self, where: str) -> None:
        if self.close_mosaic >= self.epochs:
            raise ParamsError(
                f"{where}.close_mosaic: {self.close_mosaic} epochs without mosaic leave none with it "
                f"({where}.epochs is {self.epochs}); make it smaller"
            )


@dataclass(frozen=True)
class TrainYoloParams(YoloBudgetParams):
    init: Literal["pretrained", "scratch"]
    model: str
    device: str

    def validate(self, where: str) -> None:
        super().validate(where)
        if not self.model.endswith((".yaml", ".yml")):
            raise ParamsError(
                f"{where}.model: {self.model!r} must be a model yaml such as yolov8n.yaml or yolo11n.yaml "
                "(built from scratch; a .pt checkpoint would be downloaded)"
            )
        if not re.fullmatch(r"cpu|mps|\d+", self.device):
            raise ParamsError(
                f"{where}.device: {self.device!r} is not one Ultralytics device; use cpu or a GPU index "
                "such as 0 (a GPU list would train under Ultralytics' DDP, in processes where the "
                "optimiser-step count and the final weights cannot be taken)"
            )


@dataclass(frozen=True)
class LaunchParams:
    """How a scalable stage is started (``python -m synthaug.launch``), not what it computes."""

    launcher: Literal["python", "accelerate", "torchrun"]
    processes: int = bounded(ge=1, le=4096)
    threads: int = bounded(ge=1, le=1024)

    def validate(self, where: str) -> None:
        if self.launcher == "python" and self.processes != 1:
            raise ParamsError(
                f"{where}.processes: {self.processes} processes need a launcher; set {where}.launcher "
                "to accelerate or torchrun, or processes to 1"
            )


@dataclass(frozen=True)
class RunsParams:
    """train_resnet's independent runs (regime × seed) on one machine: ``workers`` at once, each in a
    process of ``threads`` torch threads. A run's result depends on ``threads`` alone (never on
    ``workers``): on a 2-core CPU two 1-thread runs at once train 1.4× as many runs an hour as one
    2-thread run, whose small convolutions cannot keep both cores busy (bench/train_flops.py)."""

    workers: int = bounded(ge=1, le=1024)
    threads: int = bounded(ge=1, le=1024)


@dataclass(frozen=True)
class LaunchSections:
    sampling: LaunchParams
    training: LaunchParams
    runs: RunsParams

    def validate(self, where: str) -> None:
        if self.runs.workers > 1 and self.training.processes > 1:
            raise ParamsError(
                f"{where}.runs.workers: {self.runs.workers} parallel runs, but launch.training.processes "
                f"({self.training.processes}) already trains each run over several processes; set one of them to 1"
            )


@dataclass(frozen=True)
class Params:
    seed: int = bounded(ge=0, lt=2**32)
    data: DataParams
    prepare: PrepareParams
    pretrain: PretrainParams
    prompts: PromptsParams
    generate: GenerateParams
    schedulers: dict[str, dict[str, Any]]
    txt2img: Txt2ImgParams
    img2img: Img2ImgParams
    variants: dict[str, VariantParams]
    real_pool: RealPoolParams
    assemble: AssembleParams
    judge: ResnetBudget
    filter: FilterParams
    trials: TrialsParams
    train_resnet: TrainResnetParams
    pretrain_yolo: YoloBudgetParams
    train_yolo: TrainYoloParams
    quality: QualityParams
    study: StudyParams
    report: ReportParams
    launch: LaunchSections

    def _validate_variants(self) -> None:
        """Every variant's source is generated by this pipeline; a baseline of real data only exists."""
        generated = (
            {f"txt2img/{n}" for n in self.txt2img.schedulers}
            | {f"img2img/{s:g}" for s in self.img2img.strengths}
            | {"real/pool"}
        )
        for name, variant in self.variants.items():
            if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
                raise ParamsError(f"variants.{name}: use letters, digits, _ and - only (it names stages and folders)")
            if variant.source != "none" and variant.source not in generated:
                raise ParamsError(
                    f"variants.{name}.source: {variant.source!r} is not generated by this pipeline"
                    + _suggest(variant.source, generated)
                    + f" (generated: {', '.join(sorted(generated))})"
                )
            makes = {"real": self.real_pool.per_class, "txt2img": self.prompts.per_class}.get(
                variant.source.split("/")[0]
            )
            if variant.per_class is not None and makes is not None and variant.per_class > makes:
                raise ParamsError(
                    f"variants.{name}.per_class: {variant.per_class} is more than {variant.source} makes per class "
                    f"({makes}); lower it"
                )
        if BASELINE not in self.variants or self.variants[BASELINE].source != "none":
            raise ParamsError(
                "variants.baseline: required, with source: none (real data only) — gains are measured against it"
            )

    def _validate_seeds(self, name: str, variant: VariantParams) -> None:
        common = len(self.trials.resnet_seeds)
        for shots, n in (variant.seeds or {}).items():
            where = f"variants.{name}.seeds.{shots}"
            if shots not in (variant.shots or self.trials.shots):
                raise ParamsError(
                    f"{where}: {shots} shots is not a regime {name} trains in "
                    f"({list(variant.shots or self.trials.shots)}); remove it"
                )
            if n < common:
                raise ParamsError(
                    f"{where}: {n} seeds is fewer than trials.resnet_seeds ({common}), which every variant "
                    f"trains; raise it to at least {common} or remove it"
                )
            paired_with = len(resnet_seeds(self, BASELINE, shots))
            if n > paired_with:
                raise ParamsError(
                    f"{where}: {n} seeds, but the baseline trains {paired_with} at {shots} shots and a run "
                    f"is compared with the baseline's of the same seed; set variants.baseline.seeds.{shots} "
                    f"to at least {n}"
                )

    def validate(self, where: str) -> None:
        for name in self.schedulers:
            if name not in registry.SCHEDULERS:
                raise ParamsError(
                    f"schedulers.{name}: unknown scheduler"
                    + _suggest(name, registry.SCHEDULERS)
                    + f" (known: {', '.join(registry.SCHEDULERS)})"
                )
        for i, name in enumerate(self.txt2img.schedulers):
            if name not in self.schedulers:
                raise ParamsError(
                    f"txt2img.schedulers[{i}]: '{name}' has no section under schedulers"
                    + _suggest(name, self.schedulers)
                )
        self._validate_variants()
        detectors = self.trials.yolo_variants
        for i, name in enumerate(detectors):
            if name not in self.variants:
                raise ParamsError(
                    f"trials.yolo_variants[{i}]: '{name}' is not a variant"
                    + _suggest(name, self.variants)
                    + f" (variants: {', '.join(self.variants)})"
                )
        if BASELINE not in detectors:
            raise ParamsError("trials.yolo_variants: must include baseline — detection gains are measured against it")
        if len(set(detectors)) != len(detectors):
            raise ParamsError(f"trials.yolo_variants: {list(detectors)} lists a variant twice")
        if (
            any(v.source == "real/pool" for v in self.variants.values())
            and self.data.source == "embedded"
            and self.real_pool.per_class > self.prepare.pool_per_class
        ):
            raise ParamsError(
                f"real_pool.per_class: {self.real_pool.per_class} is more than the pool holds "
                f"(prepare.pool_per_class: {self.prepare.pool_per_class})"
            )
        for name, variant in self.variants.items():
            extra = sorted(set(variant.shots or ()) - set(self.trials.shots))
            if extra or variant.shots == ():
                raise ParamsError(
                    f"variants.{name}.shots: {list(variant.shots or ())} must be some of trials.shots "
                    f"({list(self.trials.shots)}), at least one"
                )
            if name == BASELINE and variant.shots is not None:
                raise ParamsError("variants.baseline.shots: the baseline trains in every regime; remove it")
        if self.data.source == "embedded" and self.trials.shots[-1] > self.prepare.shots_per_class:
            raise ParamsError(
                f"trials.shots: {self.trials.shots[-1]} shots is more than the train split holds "
                f"(prepare.shots_per_class: {self.prepare.shots_per_class})"
            )
        for name, variant in self.variants.items():
            self._validate_seeds(name, variant)
        world = self.launch.training.processes
        if self.train_resnet.batch_size % world:
            raise ParamsError(
                f"train_resnet.batch_size: {self.train_resnet.batch_size} is the global batch and does "
                f"not split over launch.training.processes ({world}); make it a multiple of {world}"
            )
        for i, s in enumerate(self.img2img.strengths):
            if registry.effective_steps(self.generate.steps, s) < 1:
                raise ParamsError(
                    f"img2img.strengths[{i}]: {s:g} × generate.steps ({self.generate.steps}) leaves no denoising "
                    f"step (img2img takes int(steps × strength)); raise generate.steps to at least {math.ceil(1 / s)} "
                    "or the strength"
                )
        if self.img2img.scheduler not in registry.SCHEDULERS:
            raise ParamsError(
                f"img2img.scheduler: unknown scheduler '{self.img2img.scheduler}'"
                + _suggest(self.img2img.scheduler, registry.SCHEDULERS)
            )


# ---------------------------------------------------------------------------------------------
# Conversion


def resnet_seeds(params: Params, variant: str, shots: int) -> tuple[int, ...]:
    """The seeds ``variant`` trains at ``shots``: trials.resnet_seeds, continued by the next integers
    where ``variants.<variant>.seeds`` asks for more in that regime."""
    seeds = params.trials.resnet_seeds
    n = (params.variants[variant].seeds or {}).get(shots, len(seeds))
    return seeds + tuple(range(max(seeds) + 1, max(seeds) + 1 + n - len(seeds)))


def _suggest(word: str, options: typing.Iterable[str]) -> str:
    match = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f"; did you mean '{match[0]}'?" if match else ""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _check_bounds(value: float, meta: typing.Mapping[str, float], where: str) -> None:
    checks = {
        "ge": (lambda v, b: v >= b, ">="),
        "gt": (lambda v, b: v > b, ">"),
        "le": (lambda v, b: v <= b, "<="),
        "lt": (lambda v, b: v < b, "<"),
    }
    for key, bound in meta.items():
        ok, symbol = checks[key]
        if not ok(value, bound):
            raise ParamsError(f"{where}: {value!r} is out of range; it must be {symbol} {bound}")


def convert(value: Any, tp: Any, where: str) -> Any:
    """Convert a parsed YAML value to ``tp`` or raise :class:`ParamsError` naming ``where``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(value, tp, where)
    if origin is Literal:
        if value not in args or isinstance(value, bool) != isinstance(args[0], bool):
            raise ParamsError(
                f"{where}: {value!r} is not one of {', '.join(map(repr, args))}" + _suggest(str(value), map(str, args))
            )
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return convert(value, inner, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise ParamsError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        return tuple(convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{where}: expected a mapping, got {type(value).__name__} {value!r}")
        if args[0] is int:  # YAML reads 16: as an int; `dvc exp run -S a.16=…` writes the key '16'
            bad = [k for k in value if not (type(k) is int or (isinstance(k, str) and k.isdigit()))]
            if bad:
                raise ParamsError(f"{where}.{bad[0]}: keys here are whole numbers, got {bad[0]!r}")
            return {int(k): convert(v, args[1], f"{where}.{k}") for k, v in value.items()}
        return {str(k): convert(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{where}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if tp in (int, bool, str):
        if type(value) is not tp:
            raise ParamsError(f"{where}: expected {tp.__name__}, got {type(value).__name__} {value!r}")
        return value
    raise TypeError(f"unsupported schema type {_type_name(tp)} at {where}")  # a bug in this module


def _convert_dataclass(value: Any, cls: type, where: str) -> Any:
    prefix = f"{where}." if where else ""
    if not isinstance(value, dict):
        raise ParamsError(f"{where or 'params'}: expected a mapping, got {type(value).__name__} {value!r}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    for key in value:
        if key not in known:
            raise ParamsError(f"{prefix}{key}: unknown key" + _suggest(str(key), known))
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in value and f.default is not dataclasses.MISSING:  # an optional key
            kwargs[f.name] = f.default
            continue
        if f.name not in value:
            raise ParamsError(f"{prefix}{f.name}: missing key (expected {_type_name(hints[f.name])})")
        kwargs[f.name] = convert(value[f.name], hints[f.name], prefix + f.name)
        if f.metadata and kwargs[f.name] is not None:
            _check_bounds(kwargs[f.name], f.metadata, prefix + f.name)
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):  # cross-field rules a single field's bounds cannot state
        obj.validate(where)
    return obj


def parse_params(raw: Any) -> Params:
    """Validate an already-parsed params mapping (as from ``yaml.safe_load``)."""
    return _convert_dataclass(raw, Params, "")


def load_params(path: Path) -> Params:
    """Read and validate ``params.yaml``; every error message starts with the file name."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ParamsError(f"{path}: cannot read params ({exc})") from None
    try:
        return parse_params(raw)
    except ParamsError as exc:
        raise ParamsError(f"{path}: {exc}") from None
