"""Infotext — the ``parameters`` PNG text chunk as the AUTOMATIC1111 web UI writes and reads it
(its ``modules/infotext_utils.py``), and synthaug's exact companion chunk:

    <prompt, any number of lines>
    Negative prompt: <negative prompt, any number of lines>
    Steps: 25, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 2, Seed: 123, Size: 32x32,
    Model hash: 1a2b3c4d5e, Model: my_model, Denoising strength: 0.4, Version: synthaug 0.1.0
    (one line; broken here to fit)

A1111's rules, both ways: the last line is the settings line only if it holds at least 3
``key: value`` pairs; everything from ``Negative prompt:`` up to it is the negative prompt, newlines
included; a value holding a comma, a colon or a newline is JSON-quoted. Images made before A1111 1.9
fold the schedule into the sampler name (``Sampler: DPM++ 2M Karras``), and since 1.9 an ``Automatic``
(or absent) schedule means Karras for DPM++ 2M, so synthaug writes ``Uniform`` for diffusers' default
spacing there. ``Model hash`` is A1111's and Civitai's AutoV2: the first 10 hex digits of the
checkpoint file's sha256.

The ``synthaug`` chunk beside it (:func:`exact_chunk`) is JSON: the scheduler's class and full
config, the model's fingerprint and dtype, the prompt record and its batch — what it takes to make
the image again byte for byte, which a web UI's line cannot say.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from synthaug import registry
from synthaug.errors import DataError
from synthaug.version import VERSION

SAMPLER_NAMES = {display: name for name, (_, display) in registry.SCHEDULERS.items()}
EXACT_KEY = "synthaug"  # the PNG text chunk holding exact_chunk's JSON
# A1111's "Schedule type" → the scheduler options diffusers uses for it (diffusers' docs, "A1111 ↔
# diffusers"); "Automatic" and "Uniform" are the scheduler's own default spacing.
SCHEDULE_TYPES: dict[str, dict[str, Any]] = {
    "Automatic": {},  # the sampler's own default (but see KARRAS_BY_DEFAULT)
    "Uniform": {},  # the model's own spacing: diffusers' default
    "Karras": {"use_karras_sigmas": True},
    "Exponential": {"use_exponential_sigmas": True},
    "Beta": {"use_beta_sigmas": True},
    "SGM Uniform": {"timestep_spacing": "trailing"},
}
LEGACY_SUFFIXES = ("Karras", "Exponential")  # "DPM++ 2M Karras": the pre-1.9 sampler names
# Since A1111 1.9, "Automatic" (or no Schedule type) means Karras for these samplers; before, the
# plain name meant the model's own spacing, which is diffusers' default ("Uniform" in A1111 1.9+).
KARRAS_BY_DEFAULT = {"dpmpp"}
PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')  # A1111's re_param
SIZE = re.compile(r"^(\d+)x(\d+)$")
# Read and shown, but nothing to apply: they describe the image rather than make it.
INFORMATIONAL = {"Model hash", "Version"}


def quote(value: Any) -> str:
    """A value as A1111 writes it: JSON-quoted if it holds a comma, a colon or a newline."""
    text = str(value)
    return text if not any(c in text for c in ",:\n") else json.dumps(text, ensure_ascii=False)


def unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return text


def schedule_type(options: Mapping[str, Any], scheduler: str = "") -> str:
    """The A1111 schedule type that ``options`` (a scheduler's config) select for ``scheduler`` (the
    registry's name): ``Uniform`` where A1111's ``Automatic`` would mean Karras."""
    for name, wanted in SCHEDULE_TYPES.items():
        if wanted and all(options.get(k) == v for k, v in wanted.items()):
            return name
    return "Uniform" if scheduler in KARRAS_BY_DEFAULT else "Automatic"


def _a1111_version(text: str) -> tuple[int, ...] | None:
    match = re.fullmatch(r"v?(\d+)\.(\d+).*", text)
    return tuple(int(g) for g in match.groups()) if match else None


def sd_parameters(
    record: Mapping[str, Any],
    sampler: str,
    steps: int,
    guidance: float,
    size: tuple[int, int],
    model: str,
    strength: float | None = None,
    *,
    options: Mapping[str, Any] | None = None,
    model_hash: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """The chunk of one image: its prompt record (prompt, negative prompt, seed), how it was sampled
    (``sampler``: the registry's display name, e.g. ``DPM++ 2M``; ``options``: the scheduler's, whose
    sigma schedule becomes ``Schedule type`` and whose ``eta`` becomes ``Eta``), the model (``model_hash``
    for a single-file checkpoint), ``strength`` for img2img, and ``extra`` settings (e.g. an X/Y grid's)."""
    options = dict(options or {})
    lines = [str(record["prompt"])]
    if record.get("negative_prompt"):
        lines.append(f"Negative prompt: {record['negative_prompt']}")
    fields: dict[str, Any] = {
        "Steps": steps,
        "Sampler": sampler,
        "Schedule type": schedule_type(options, SAMPLER_NAMES.get(sampler, "")),
        "CFG scale": f"{guidance:g}",
        "Seed": record["seed"],
        "Size": f"{size[0]}x{size[1]}",
    }
    if model_hash:
        fields["Model hash"] = model_hash
    fields["Model"] = model
    if strength is not None:
        fields["Denoising strength"] = f"{strength:g}"
    if "eta" in options:
        fields["Eta"] = f"{options['eta']:g}"
    fields |= dict(extra or {})
    fields["Version"] = f"synthaug {VERSION}"
    lines.append(", ".join(f"{k}: {quote(v)}" for k, v in fields.items()))
    return "\n".join(lines)


def with_settings(text: str, extra: Mapping[str, Any]) -> str:
    """A chunk with ``extra`` settings added to its settings line, before ``Version`` (as A1111's X/Y
    plot script adds ``X Type``/``X Values`` to a grid's chunk)."""
    head, _, last = text.rpartition("\n")
    settings, version = last, ""
    if ", Version: " in last:
        settings, version = last.rsplit(", Version: ", 1)
        version = f", Version: {version}"
    added = "".join(f", {k}: {quote(v)}" for k, v in extra.items())
    return f"{head}\n{settings}{added}{version}" if head else f"{settings}{added}{version}"


def exact_chunk(
    record: Mapping[str, Any],
    sampling: Any,
    model: Mapping[str, Any],
    batch: Sequence[Mapping[str, Any]],
) -> str:
    """The JSON that remakes one image exactly: its record, the scheduler (class, full config, step
    options), steps, guidance and strength, ``model`` (id, fingerprint, dtype) and the records of its
    batch in order (batched arithmetic rounds differently for another batch)."""
    scheduler = sampling.scheduler
    return json.dumps(
        {
            "record": dict(record),
            "scheduler": {
                "class": type(scheduler).__name__,
                # diffusers' private keys describe the config object, not the schedule; one of them
                # (_use_default_values) is a list in set order, which changes from process to process
                "config": {k: v for k, v in scheduler.config.items() if not k.startswith("_")},
                "step_options": dict(sampling.step_kwargs),
            },
            "steps": sampling.steps,
            "guidance": sampling.guidance,
            "strength": sampling.strength,
            "model": dict(model),
            "batch": [{k: r[k] for k in ("id", "class", "seed") if k in r} for r in batch],
            "version": VERSION,
        },
        sort_keys=True,
        default=str,
    )


def _split(text: str) -> tuple[str, str, str]:
    """(prompt, negative prompt, settings line) by A1111's rules."""
    *lines, last = text.strip().split("\n")
    if len(PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""
    prompt: list[str] = []
    negative: list[str] = []
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            negative.append(line[len("Negative prompt:") :].strip())
        elif negative:
            negative.append(line)
        else:
            prompt.append(line)
    return "\n".join(prompt), "\n".join(negative), last


def _sampler(name: str, fields: dict[str, str]) -> tuple[str, str]:
    """(registry name, schedule type) of a sampler name, the legacy ``<sampler> Karras`` form too."""
    schedule = fields.get("Schedule type", "Automatic")
    if name not in SAMPLER_NAMES:
        base, _, suffix = name.rpartition(" ")
        if suffix in LEGACY_SUFFIXES and base in SAMPLER_NAMES:
            name, schedule = base, suffix
    if schedule == "Automatic" and SAMPLER_NAMES.get(name) in KARRAS_BY_DEFAULT:
        version = _a1111_version(fields.get("Version", ""))
        schedule = "Karras" if version is not None and version >= (1, 9) else "Uniform"
    if name not in SAMPLER_NAMES:
        raise DataError(
            f"parameters chunk: sampler {name!r} has no scheduler here (known: {', '.join(SAMPLER_NAMES)}, "
            "each also with Karras or Exponential)"
        )
    return SAMPLER_NAMES[name], schedule


def parse(text: str) -> dict:
    """A chunk back into values: prompt, negative_prompt, steps, scheduler (the registry's name) and
    its ``options`` (from ``Schedule type`` and ``Eta``), guidance, seed, width, height, model and,
    where written, model_hash, strength and version; ``not_applied``: every other setting, as written
    (a web UI's ``Clip skip``, ``Hires upscale``, a schedule type diffusers has no option for), for the
    user to see. Raises :class:`DataError` on text that is not such a chunk."""
    prompt, negative, last = _split(text)
    fields = {k.strip(): unquote(v.strip()) for k, v in PARAM.findall(last)}
    if not fields:
        raise DataError("not a parameters chunk (no settings line of 'key: value' pairs after the prompt)")
    try:
        scheduler, schedule = _sampler(fields["Sampler"], fields)
        size = SIZE.match(fields["Size"])
        if size is None:
            raise ValueError(f"Size {fields['Size']!r} is not WIDTHxHEIGHT")
        out: dict[str, Any] = {
            "prompt": prompt,
            "negative_prompt": negative,
            "steps": int(fields["Steps"]),
            "scheduler": scheduler,
            "options": {},
            "guidance": float(fields["CFG scale"]),
            "seed": int(fields["Seed"]),
            "width": int(size.group(1)),
            "height": int(size.group(2)),
            "model": fields.get("Model", ""),
        }
        if "Denoising strength" in fields:
            out["strength"] = float(fields["Denoising strength"])
        eta = fields.get("Eta", fields.get("Eta DDIM"))
        if eta is not None:
            out["options"]["eta"] = float(eta)
    except KeyError as exc:
        raise DataError(f"parameters chunk: no {exc.args[0]!r} setting") from None
    except ValueError as exc:
        raise DataError(f"parameters chunk: {exc}") from None
    used = {"Sampler", "Size", "Steps", "CFG scale", "Seed", "Model", "Denoising strength", "Eta", "Eta DDIM"}
    not_applied = {k: v for k, v in fields.items() if k not in used | INFORMATIONAL | {"Schedule type"}}
    if schedule in SCHEDULE_TYPES:
        out["options"] |= SCHEDULE_TYPES[schedule]
    else:
        not_applied["Schedule type"] = schedule
    out |= {key: fields[name] for key, name in (("model_hash", "Model hash"), ("version", "Version")) if name in fields}
    out["not_applied"] = not_applied
    return out
