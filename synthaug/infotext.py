"""Infotext — A1111's name for the ``parameters`` PNG text chunk, as the AUTOMATIC1111 web UI
writes it and common tools read it:

    <prompt>
    Negative prompt: <negative prompt>
    Steps: 25, Sampler: DDIM, CFG scale: 2, Seed: 123, Size: 32x32, Model: models/builtin[, Denoising strength: 0.4]

txt2img writes it into every image; the app writes the same and reads it back (:func:`parse`).
"""

from __future__ import annotations

import re

from synthaug import registry
from synthaug.errors import DataError

SAMPLER_NAMES = {display: name for name, (_, display) in registry.SCHEDULERS.items()}


def sd_parameters(
    record: dict,
    sampler: str,
    steps: int,
    guidance: float,
    size: tuple[int, int],
    model: str,
    strength: float | None = None,
) -> str:
    """The chunk for one image: its prompt record (prompt, negative prompt, seed) and how it was sampled
    (``sampler``: the registry's display name, e.g. ``DPM++ 2M``)."""
    text = f"{record['prompt']}\nNegative prompt: {record['negative_prompt']}\n"
    text += f"Steps: {steps}, Sampler: {sampler}, CFG scale: {guidance:g}, Seed: {record['seed']}, "
    text += f"Size: {size[0]}x{size[1]}, Model: {model}"
    return text + (f", Denoising strength: {strength:g}" if strength is not None else "")


def parse(text: str) -> dict:
    """A chunk back into values: prompt, negative_prompt, steps, scheduler (the registry's name),
    guidance, seed, width, height, model and, for img2img, strength. Raises :class:`DataError` on text
    that is not such a chunk."""
    lines = text.strip().splitlines()
    if len(lines) < 2 or not lines[-1].startswith("Steps: "):
        raise DataError("not a parameters chunk (its last line must start with 'Steps: ')")
    fields = dict(re.findall(r"(\w[\w ]*): ([^,]+(?:, (?![A-Z][\w ]*: )[^,]+)*)", lines[-1]))
    negative = [line for line in lines[:-1] if line.startswith("Negative prompt: ")]
    prompt = "\n".join(line for line in lines[:-1] if not line.startswith("Negative prompt: "))
    try:
        width, height = (int(v) for v in fields["Size"].split("x"))
        out = {
            "prompt": prompt,
            "negative_prompt": negative[0].removeprefix("Negative prompt: ") if negative else "",
            "steps": int(fields["Steps"]),
            "scheduler": SAMPLER_NAMES[fields["Sampler"]],
            "guidance": float(fields["CFG scale"]),
            "seed": int(fields["Seed"]),
            "width": width,
            "height": height,
            "model": fields.get("Model", ""),
        }
    except KeyError as exc:
        raise DataError(f"parameters chunk: no {exc.args[0]!r} (or a sampler this pipeline does not know)") from None
    except ValueError as exc:
        raise DataError(f"parameters chunk: {exc}") from None
    if "Denoising strength" in fields:
        out["strength"] = float(fields["Denoising strength"])
    return out
