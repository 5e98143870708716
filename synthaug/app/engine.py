"""The app's engine (:mod:`synthaug.app.handlers` is its Gradio face), over the pipeline's own code.

Models load through :func:`synthaug.diffusion.load_backend`, once each (switching the scheduler
rebuilds only the scheduler, :meth:`Sampling.of`); params validate through :mod:`synthaug.params`;
images are written by :func:`synthaug.images.save_png` with the ``parameters`` chunk txt2img writes
(:mod:`synthaug.infotext`). So an image made here with a prompt record's params and seed is the
txt2img stage's image, byte for byte. Nothing here writes to the pipeline's outputs: images go to the
folder the app is given.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from synthaug import recipes, registry
from synthaug.diffusion import Backend, Sampling, backend_for
from synthaug.errors import DataError, UserError
from synthaug.images import letterbox, save_png
from synthaug.infotext import with_settings
from synthaug.params import Params, check_adapter
from synthaug.user_data import open_image

AXES = ("scheduler", "steps", "guidance", "strength", "seed")
MAX_SIDE = 8192  # an upload larger than this (either side) is refused before it is decoded further


class Cancelled(UserError):
    """The user pressed Cancel: sampling stopped after the current denoising step."""


@dataclass(frozen=True)
class Request:
    """One generation: the model, what to draw, how to sample it, and the first seed (image ``i`` of a
    batch has seed ``seed + i``). The builtin model draws a class, ``label`` (default: the prompt, when
    it is a class name); the prompt is then only written into the parameters chunk, as txt2img does."""

    model: str
    scheduler: str
    steps: int
    guidance: float
    label: str = ""
    prompt: str = ""
    negative_prompt: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    batch: int = 1
    strength: float | None = None  # img2img only
    adapters: tuple[dict[str, Any], ...] = ()  # as generate.adapters: LoRA and textual-inversion files

    @classmethod
    def of(cls, params: Params, **fields: Any) -> Request:
        """A request with the pipeline's own defaults for what ``fields`` leaves out: ``generate``'s
        model, steps and guidance, txt2img's first scheduler with its ``schedulers.<name>`` options."""
        g = params.generate
        scheduler = fields.get("scheduler", params.txt2img.schedulers[0])
        options = dict(params.schedulers.get(scheduler, {}))
        return cls(
            **{"model": g.model, "scheduler": scheduler, "options": options, "steps": g.steps, "guidance": g.guidance}
            | {"adapters": g.adapters}
            | fields
        )

    def check(self) -> None:
        """One message per bad value, naming the field and the fix."""
        if self.scheduler not in registry.SCHEDULERS:
            close = difflib.get_close_matches(self.scheduler, registry.SCHEDULERS, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f" (known: {', '.join(registry.SCHEDULERS)})"
            raise UserError(f"scheduler: unknown '{self.scheduler}'{hint}")
        rules = [
            ("steps", self.steps, 1 <= self.steps <= 1000, "a whole number from 1 to 1000"),
            ("guidance", self.guidance, 0 <= self.guidance <= 50, "from 0 to 50"),
            ("seed", self.seed, 0 <= self.seed < 2**32 - 64, "from 0 to 2^32 - 65"),
            ("batch size", self.batch, 1 <= self.batch <= 16, "from 1 to 16"),
        ]
        if self.strength is not None:
            rules.append(("strength", self.strength, 0 < self.strength <= 1, "in (0, 1]"))
        for name, value, ok, fix in rules:
            if not ok:
                raise UserError(f"{name}: {value} is out of range; use a value {fix}")
        for i, adapter in enumerate(self.adapters):
            check_adapter(adapter, f"adapters[{i}]")
        if self.adapters and self.model == "builtin":
            raise UserError("adapters: the builtin model takes none; clear them or choose a Stable Diffusion model")
        if self.strength is not None and registry.effective_steps(self.steps, self.strength) < 1:
            raise UserError(
                f"strength: {self.strength:g} × steps ({self.steps}) leaves no denoising step (img2img takes "
                "int(steps × strength)); raise the steps or the strength"
            )

    def replace(self, **changes: Any) -> Request:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Made:
    """One generated image: where its PNG is, its ``parameters`` chunk and its share of the time."""

    path: Path
    parameters: str
    seconds: float


def open_upload(path: Path) -> Image.Image:
    """A user's upload as an image, decoded as prepare decodes user photos (:func:`open_image`: EXIF
    orientation applied, 16-bit grey scaled), or one clear error. Its header is read first: a huge
    image is refused before its pixels are decoded."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise DataError(f"{path.name}: empty file; upload a PNG, JPEG or WebP image")
    fix = f"upload an image at most {MAX_SIDE} px a side"
    try:
        with Image.open(path) as img:
            width, height = img.size
    except Image.DecompressionBombError:
        raise DataError(f"{path.name}: too many pixels to decode; {fix}") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(f"{path.name}: not an image Pillow can read ({type(exc).__name__})") from None
    if max(width, height) > MAX_SIDE:
        raise DataError(f"{path.name}: {width}×{height} px; {fix}")
    return open_image(path)


SHOWN_SIDE = 256  # a small image is shown at the largest integer zoom that fits this side


def shown_at(path: Path) -> str:
    """What the gallery shows of an image: the PNG itself, or — under SHOWN_SIDE px — a copy at an
    integer zoom with every pixel a crisp square (nearest neighbour, the same chunks), in ``preview/``
    beside it, so a 32 px digit is seen whole, not stretched and cropped by the gallery."""
    img = Image.open(path)
    zoom = SHOWN_SIDE // max(img.size)
    if zoom < 2:
        return str(path)
    preview = path.parent / "preview" / path.name
    preview.parent.mkdir(exist_ok=True)
    big = img.resize((img.width * zoom, img.height * zoom), Image.Resampling.NEAREST)
    save_png(big, preview, dict(img.text))
    return str(preview)


def model_key(model: str, adapters: Sequence[dict[str, Any]]) -> str:
    """The cache key of a model with its adapters (backends and model cards are made once each)."""
    return json.dumps([model, list(adapters)], sort_keys=True)


class Engine:
    """The app's state: the validated params, the builtin model's folder, and every model loaded so far."""

    def __init__(self, params: Params, builtin: Path, out: Path, builtin_label: str):
        """``builtin_label``: how the parameters chunk names the builtin model (txt2img writes the path
        dvc.yaml passes it, ``models/builtin``)."""
        from synthaug.cli import pin_threads

        pin_threads(params.launch.sampling.threads)  # the pixels txt2img makes depend on the thread count
        self.params, self.builtin, self.out, self.builtin_label = params, Path(builtin), Path(out), builtin_label
        self._backends: dict[str, Backend] = {}
        self._cards: dict[str, recipes.ModelCard] = {}
        self.session = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"  # with self.made: unique file names
        self.made = itertools.count()
        self.loads = 0  # how many times a model was loaded (the tests check the cache)

    def backend(self, model: str, adapters: Sequence[dict[str, Any]] = ()) -> Backend:
        """``model`` with ``adapters`` loaded as the stages load theirs (:func:`backend_for`: every
        ``generate`` key — dtype, size, compile, attention slicing, safety checker, a single file's
        model_config — honoured), once."""
        key = model_key(model, adapters)
        if key not in self._backends:
            g = dataclasses.replace(self.params.generate, model=model, adapters=tuple(adapters))
            self._backends[key] = backend_for(g, self.builtin)
            self.loads += 1
        return self._backends[key]

    def records(self, req: Request, backend: Backend) -> list[dict]:
        """The prompt records of a request, as the prompts stage writes them (class, prompt, seed)."""
        k = -1
        if not backend.text_conditioned:
            label = req.label or req.prompt
            if label not in backend.classes:
                hint = difflib.get_close_matches(label, backend.classes, n=1)
                raise UserError(
                    f"class: the builtin model draws one of {', '.join(backend.classes)}"
                    + (f"; did you mean '{hint[0]}'?" if hint else "")
                )
            k = backend.classes.index(label)
        return [
            {"class": k, "prompt": req.prompt, "negative_prompt": req.negative_prompt, "seed": req.seed + i}
            for i in range(req.batch)
        ]

    def generate(
        self,
        req: Request,
        image: Image.Image | None = None,
        on_step: Callable[[int, int], None] | None = None,
    ) -> list[Made]:
        """txt2img (``image`` None) or img2img of ``image`` (letterboxed to the model's size in its mode,
        as the img2img stage does); every image saved as a PNG with its parameters chunk."""
        req.check()
        if image is not None and req.strength is None:
            raise UserError("strength: img2img needs a strength in (0, 1]")
        backend = self.backend(req.model, req.adapters)
        records = self.records(req, backend)
        req = req.replace(strength=req.strength if image is not None else None)  # txt2img has no strength
        sampling = Sampling.of(
            req.scheduler, backend.scheduler_config, req.options, req.steps, req.guidance, on_step=on_step
        )
        t0 = time.perf_counter()
        model = self.model_card(req.model, req.adapters)
        if image is None:
            made = recipes.txt2img(backend, records, req.scheduler, sampling, model)
        else:
            mode = "L" if backend.channels == 1 else "RGB"
            source = np.asarray(letterbox(image, backend.image_size, mode, 0)[0])
            sampling = dataclasses.replace(sampling, strength=req.strength)
            made = recipes.img2img(backend, np.stack([source] * len(records)), records, req.scheduler, sampling, model)
        seconds = (time.perf_counter() - t0) / len(records)
        return [
            self.save(pixels, chunks, f"{self.session}-{next(self.made):05d}-seed{record['seed']}", seconds)
            for record, (pixels, chunks) in zip(records, made)
        ]

    def pipeline_image(
        self, records: Sequence[dict], index: int, scheduler: str, on_step: Callable[[int, int], None] | None = None
    ) -> Made:
        """Prompt record ``index`` made exactly as ``txt2img@<scheduler>`` makes it: params.yaml's model
        and sampling, and the same batch around it (batched arithmetic rounds differently for another
        batch size), so the PNG is the stage's, byte for byte."""
        if not 0 <= index < len(records):
            raise UserError(f"record: {index} is not one of the {len(records)} prompt records")
        g = self.params.generate
        if scheduler not in self.params.schedulers:
            raise UserError(f"scheduler: no schedulers.{scheduler} section in params.yaml")
        backend = self.backend(g.model, g.adapters)
        start = index - index % g.batch_size  # txt2img's fixed partition into batches
        options = self.params.schedulers[scheduler]
        sampling = Sampling.of(scheduler, backend.scheduler_config, options, g.steps, g.guidance, on_step=on_step)
        t0 = time.perf_counter()
        batch = records[start : start + g.batch_size]
        made = recipes.txt2img(backend, batch, scheduler, sampling, self.model_card(g.model, g.adapters))
        pixels, chunks = made[index - start]
        return self.save(pixels, chunks, f"{records[index].get('id', index)}-{scheduler}", time.perf_counter() - t0)

    def model_card(self, model: str, adapters: Sequence[dict[str, Any]] = ()) -> recipes.ModelCard:
        """How the chunks name ``model`` and its ``adapters`` (the builtin as txt2img names it, the
        folder dvc.yaml passes), fingerprinted once: a Stable Diffusion checkpoint holds GBs to hash."""
        key = model_key(model, adapters)
        if key not in self._cards:
            dtype = self.params.generate.dtype
            self._cards[key] = recipes.ModelCard.of(model, self.builtin, dtype, self.builtin_label, adapters)
        return self._cards[key]

    def save(self, pixels: np.ndarray, chunks: dict[str, str], name: str, seconds: float) -> Made:
        """``out/<name>.png`` with its chunks."""
        path = self.out / f"{name}.png"
        save_png(pixels, path, chunks)
        return Made(path, chunks["parameters"], seconds)

    def grid(
        self,
        req: Request,
        x: tuple[str, Sequence[Any]],
        y: tuple[str, Sequence[Any]],
        image: Image.Image | None = None,
        on_step: Callable[[int, int], None] | None = None,
    ) -> tuple[Path, list[list[float]]]:
        """An X/Y grid in the AUTOMATIC1111 manner: one image per (x, y) value pair, everything else —
        the seed included — as in ``req``; labelled axes; and each cell's seconds per image."""
        for axis, values in (x, y):
            if axis not in AXES:
                raise UserError(f"axis: unknown '{axis}'; choose one of {', '.join(AXES)}")
            if not values:
                raise UserError(f"axis {axis}: give at least one value")
        cells, seconds, first = [], [], ""
        for yv in y[1]:
            row = []
            for xv in x[1]:
                cell = req.replace(**{x[0]: xv, y[0]: yv}, batch=1)
                if "scheduler" in (x[0], y[0]):
                    cell = cell.replace(options=self.params.schedulers.get(cell.scheduler, {}))
                made = self.generate(cell, image, on_step)[0]
                first = first or made.parameters
                cells.append(Image.open(made.path))
                row.append(round(made.seconds, 4))
            seconds.append(row)
        sheet = labelled_grid(cells, [f"{x[0]} {v}" for v in x[1]], [f"{y[0]} {v}" for v in y[1]])
        path = self.out / f"{self.session}-{next(self.made):05d}-grid.png"
        axes = {"Script": "X/Y plot", "X Type": x[0], "X Values": ", ".join(map(str, x[1]))}
        axes |= {"Y Type": y[0], "Y Values": ", ".join(map(str, y[1]))}
        save_png(sheet, path, {"parameters": with_settings(first, axes)})  # the first cell's, with the axes
        return path, seconds


def labelled_grid(cells: Sequence[Image.Image], columns: Sequence[str], rows: Sequence[str]) -> Image.Image:
    """Cells (row-major) under column labels and beside row labels, each cell at least 128 px."""
    side = max(128, max(max(c.size) for c in cells))
    font = ImageFont.load_default(size=14)
    margin, top = 150, 28
    sheet = Image.new("RGB", (margin + len(columns) * (side + 4), top + len(rows) * (side + 4)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, label in enumerate(columns):
        draw.text((margin + i * (side + 4) + 4, 6), str(label), fill="black", font=font)
    for j, label in enumerate(rows):
        draw.text((6, top + j * (side + 4) + side // 2 - 7), str(label), fill="black", font=font)
    for n, cell in enumerate(cells):
        i, j = n % len(columns), n // len(columns)
        tile = cell.convert("RGB").resize((side, side), Image.Resampling.NEAREST)
        sheet.paste(tile, (margin + i * (side + 4), top + j * (side + 4)))
    return sheet
