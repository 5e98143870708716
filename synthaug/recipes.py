"""The sampling recipes, once each: prompt records (and, for img2img, source images) sampled by a
backend into images, each with the chunks that say how it was made — A1111's ``parameters`` line and
synthaug's exact JSON (synthaug.infotext). The txt2img stage, the scheduler study and the app call
:func:`txt2img`; the img2img stage and the app call :func:`img2img`; so an image of one is an image
of the others."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthaug import registry
from synthaug.diffusion import Backend, Sampling
from synthaug.infotext import EXACT_KEY, exact_chunk, sd_parameters
from synthaug.resume import file_sha256, model_digest

Made = tuple[np.ndarray, dict[str, str]]  # an image and its PNG text chunks


@dataclass(frozen=True)
class ModelCard:
    """How an image's chunks name the model that made it."""

    label: str  # the chunk's Model: a single file's base name (as A1111 writes it), else the id as given
    fingerprint: str  # synthaug.resume.model_digest: the files' digest (a hub id: the id itself)
    dtype: str
    hash: str | None = None  # Model hash, for a single-file checkpoint
    adapters: tuple[dict[str, Any], ...] = ()  # generate.adapters, each with its file's sha256

    @classmethod
    def of(
        cls,
        model: str,
        builtin: Path,
        dtype: str,
        builtin_label: str | None = None,
        adapters: Sequence[dict[str, Any]] = (),
    ) -> ModelCard:
        """``generate.model`` (and ``generate.adapters``) as the stages resolve it (``builtin``: the
        folder dvc.yaml passes, which the chunk names as given, or as ``builtin_label``)."""
        digest = model_digest(model, builtin)
        hashed = tuple(a | {"sha256": file_sha256(Path(a.get("lora") or a["textual_inversion"]))} for a in adapters)
        if model != "builtin" and Path(model).is_file():  # A1111's Model and Model hash (AutoV2)
            return cls(Path(model).stem, digest, dtype, digest[:10], hashed)
        label = (builtin_label or str(builtin)) if model == "builtin" else model
        return cls(label, digest, dtype, None, hashed)

    def as_dict(self) -> dict[str, Any]:
        card = {"id": self.label, "fingerprint": self.fingerprint, "dtype": self.dtype, "hash": self.hash}
        return card | ({"adapters": list(self.adapters)} if self.adapters else {})

    def settings(self) -> dict[str, str]:
        """A1111's adapter settings: ``Lora hashes`` and ``TI hashes`` (name: sha256[:10], as Civitai reads)."""
        out = {}
        for key, kind in (("Lora hashes", "lora"), ("TI hashes", "textual_inversion")):
            names = [
                f"{a['token'] if kind == 'textual_inversion' else Path(a[kind]).stem}: {a['sha256'][:10]}"
                for a in self.adapters
                if kind in a
            ]
            if names:
                out[key] = ", ".join(names)
        return out


def chunks(
    record: dict,
    batch: Sequence[dict],
    scheduler: str,
    sampling: Sampling,
    model: ModelCard,
    size: tuple[int, int],
    strength: float | None = None,
) -> dict[str, str]:
    """The two text chunks of one image of ``batch`` (``strength``: img2img's)."""
    sampler = registry.SCHEDULERS[scheduler][1]
    options = dict(sampling.scheduler.config) | sampling.step_kwargs
    line = sd_parameters(
        record, sampler, sampling.steps, sampling.guidance, size, model.label, strength,
        options=options, model_hash=model.hash, extra=model.settings(),
    )  # fmt: skip
    return {"parameters": line, EXACT_KEY: exact_chunk(record, sampling, model.as_dict(), batch)}


def txt2img(
    backend: Backend, records: Sequence[dict], scheduler: str, sampling: Sampling, model: ModelCard
) -> list[Made]:
    """Each record's image and its chunks (``scheduler``: the registry name ``sampling`` was made from)."""
    images = backend.txt2img(records, sampling)
    return [
        (image, chunks(r, records, scheduler, sampling, model, image.shape[1::-1])) for r, image in zip(records, images)
    ]


def img2img(
    backend: Backend,
    sources: np.ndarray,
    records: Sequence[dict],
    scheduler: str,
    sampling: Sampling,
    model: ModelCard,
) -> list[Made]:
    """Each source image (at the model's size and mode) remade at ``sampling.strength`` from its record,
    with its chunks; ``Steps`` in them is the schedule's length, and the steps really taken are
    ``registry.effective_steps(steps, strength)``, which the img2img manifest records."""
    images = backend.img2img(sources, records, sampling)
    return [
        (image, chunks(r, records, scheduler, sampling, model, image.shape[1::-1], sampling.strength))
        for r, image in zip(records, images)
    ]
