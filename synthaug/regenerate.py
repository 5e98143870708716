"""img2img's image work (stage ``img2img``): images to and from a model's size, and the
regeneration of a detection canvas's objects in place, with their boxes kept.

- A text-conditioned model (Stable Diffusion) remakes the whole canvas from a prompt naming its
  classes (the img2img recipe, synthaug.recipes), each canvas with its chunks.
- The builtin class-conditional model makes digits, not scenes: each box's crop becomes a digit
  mask (distance from the crop's border colour), that mask is remade conditioned on the box's
  class, and the new digit is painted back in the old ink colour over the erased old one
  (:func:`regenerate_boxes`).

:class:`Img2ImgJob` is the stage's work on batches of real images and canvases.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from synthaug import recipes, registry
from synthaug.compose import border_distance
from synthaug.diffusion import Backend, Sampling
from synthaug.files import write_bytes
from synthaug.images import letterbox, read_yolo_boxes, save_png
from synthaug.layout import Real, Source, label_of, variant_name
from synthaug.params import Params
from synthaug.seeds import stable_seed

Sample = Callable[[list[np.ndarray], list[dict]], np.ndarray]  # (model-size images, prompt records) -> images
# A pixel belongs to the old digit (and is erased to the background) above this share of the mask's
# range: the same cut assemble's X-Paste makes by default (assemble.paste_threshold: 0.25).
ERASE_THRESHOLD = 0.25
CELL = 28 / 20  # an MNIST digit's ink spans ~20 of its 28 px cell: crop that much context around a box


def to_model(image: Image.Image, backend: Backend) -> np.ndarray:
    mode = "L" if backend.channels == 1 else "RGB"
    return np.asarray(letterbox(image, backend.image_size, mode, 0)[0])


def from_model(image: np.ndarray, size: int, mode: str) -> Image.Image:
    return Image.fromarray(image).convert(mode).resize((size, size), Image.Resampling.BICUBIC)


def digit_mask(crop: np.ndarray, own: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mask in [0, 1], background colour, ink colour) of an RGB crop around one object: the
    background is the median colour of the crop's border, the mask the normalised distance from it,
    the ink the median colour of the strongest mask pixels among ``own`` (a boolean map of the
    object's box minus its neighbours' boxes, since the crop may reach into another digit)."""
    dist, bg = border_distance(crop)
    scale = max(np.percentile(dist, 99), 1e-6)
    mask = np.clip(dist / scale, 0, 1)
    inside = mask[own]
    strong = own & (mask >= max(0.5, np.percentile(inside, 90))) if inside.size else own
    ink = np.median(crop[strong], axis=0) if strong.any() else 255 - bg
    return mask, bg, ink


def crop_square(box: Sequence[float], size: int) -> tuple[int, int, int]:
    """(x, y, side) of a square around a pixel xyxy box with digit-cell context, inside the canvas."""
    x0, y0, x1, y1 = box
    side = int(min(size, max(8, round(max(x1 - x0, y1 - y0) * CELL))))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    x = int(np.clip(round(cx - side / 2), 0, size - side))
    y = int(np.clip(round(cy - side / 2), 0, size - side))
    return x, y, side


def box_map(box: Sequence[float], size: int) -> np.ndarray:
    """Boolean ``size``×``size`` map of a normalised xyxy box."""
    m = np.zeros((size, size), bool)
    x0, y0, x1, y1 = (int(round(v * size)) for v in box)
    m[y0:y1, x0:x1] = True
    return m


def regenerate_boxes(
    canvases: Sequence[np.ndarray],
    boxes: Sequence[list],
    record: Callable[[int, int, int], dict],
    backend: Backend,
    sample: Sample,
) -> list[np.ndarray]:
    """Every box's digit remade in place by the builtin model. ``boxes[i]``: (class, normalised xyxy)
    of canvas ``i``; ``record(i, j, class)``: the prompt record (class and seed) of its box ``j``."""
    size = canvases[0].shape[0] if len(canvases) else 0
    crops, records, where = [], [], []
    for i, (canvas, bx) in enumerate(zip(canvases, boxes)):
        for j, (c, box) in enumerate(bx):
            x, y, side = crop_square([b * size for b in box], size)
            others = [box_map(o, size) for k, (_, o) in enumerate(bx) if k != j] or [np.zeros((size, size), bool)]
            own = box_map(box, size) & ~np.any(others, axis=0)
            mask, bg, ink = digit_mask(canvas[y : y + side, x : x + side], own[y : y + side, x : x + side])
            crops.append(to_model(Image.fromarray((mask * 255).astype(np.uint8)), backend))
            records.append(record(i, j, c))
            where.append((i, x, y, side, mask, bg, ink))
    results = [c.astype(np.float64) for c in canvases]
    out = sample(crops, records) if crops else []
    for (i, x, y, side, old, bg, ink), new in zip(where, out):
        a = (np.asarray(from_model(new, side, "L"), dtype=np.float64) / 255.0)[..., None]
        region = results[i][y : y + side, x : x + side]
        erased = np.where(old[..., None] > ERASE_THRESHOLD, bg, region)  # drop the old digit, then paint the new
        results[i][y : y + side, x : x + side] = erased * (1 - a) + ink * a
    return [np.clip(np.rint(r), 0, 255).astype(np.uint8) for r in results]


class Img2ImgJob:
    """One strength's work (stage ``img2img``): variants of real train images (:meth:`cls_work`) and of
    real canvases (:meth:`det_work`), each batch saved and returned as manifest rows."""

    def __init__(
        self,
        params: Params,
        classes: list[str],
        backend: Backend,
        model: recipes.ModelCard,
        strength: float,
        real: Real,
        out: Source,
    ):
        self.params, self.classes, self.backend, self.model, self.strength = params, classes, backend, model, strength
        self.real, self.out = real, out
        # what every manifest row says of the schedule (its length, the steps SDEdit really takes of it)
        # and of the adapters
        steps = params.generate.steps
        self.provenance = {"steps": steps, "denoising_steps": registry.effective_steps(steps, strength)}
        self.provenance |= {"adapters": list(model.adapters)} if model.adapters else {}

    def record(self, names: Sequence[str], seed: int, class_id: int) -> dict:
        p = self.params.prompts
        return {
            "class": class_id,
            "prompt": p.templates[0].format(name=" and ".join(names)),
            "negative_prompt": p.negative_prompt,
            "seed": seed,
        }

    def sampling(self) -> Sampling:
        p, g = self.params.img2img, self.params.generate
        config = self.backend.scheduler_config
        return Sampling.of(p.scheduler, config, p.scheduler_options, g.steps, g.guidance, strength=self.strength)

    def sample(self, images: list[np.ndarray], records: list[dict]) -> np.ndarray:
        """Model-size images remade (the digits of a canvas's boxes: no image of its own to label)."""
        return self.backend.img2img(np.stack(images), records, self.sampling())

    def made(self, images: list[np.ndarray], records: list[dict]) -> list[recipes.Made]:
        """Model-size images remade by the img2img recipe, each with its chunks."""
        return recipes.img2img(
            self.backend, np.stack(images), records, self.params.img2img.scheduler, self.sampling(), self.model
        )

    def cls_work(self, batch: Sequence[tuple[Path, int, int]]) -> list[dict]:
        """Variants of real train images (source file, class, variant number), labels kept."""
        seed, names, d = self.params.seed, self.classes, self.params.data
        records = [self.record([names[k]], stable_seed(seed, "img2img", f.name, v), k) for f, k, v in batch]
        out = self.made([to_model(Image.open(f), self.backend) for f, _, _ in batch], records)
        rows = []
        for (f, k, v), rec, (image, chunks) in zip(batch, records, out):
            rel = f"{names[k]}/{variant_name(f, v)}"
            save_png(from_model(image, d.image_size, "L" if d.channels == 1 else "RGB"), self.out.cls / rel, chunks)
            rows.append(
                {
                    "file": rel,
                    "source": f.relative_to(self.real.root).as_posix(),
                    "class": k,
                    "name": names[k],
                    "strength": self.strength,
                    **self.provenance,
                    "seed": rec["seed"],
                }
            )
        return rows

    def det_seed(self, split: str, f: Path, *rest: int) -> int:
        return stable_seed(self.params.seed, "img2img-det" + ("" if split == "train" else f"-{split}"), f.name, *rest)

    def det_work(self, batch: Sequence[tuple[str, Path, int]]) -> list[dict]:
        """Variants of real canvases (split, file, variant number), boxes kept; val canvases go to det_val."""
        canvases = [np.asarray(Image.open(f).convert("RGB")) for _, f, _ in batch]
        labels = [label_of(f) for _, f, _ in batch]
        boxes = [read_yolo_boxes(label) for label in labels]
        if self.backend.text_conditioned:
            records = [
                self.record(sorted({self.classes[c] for c, _ in bx}) or ["nothing"], self.det_seed(*item), -1)
                for item, bx in zip(batch, boxes)
            ]
            made = self.made([to_model(Image.fromarray(c), self.backend) for c in canvases], records)
            size = self.params.data.det_image_size
            results = [np.asarray(from_model(image, size, "RGB")) for image, _ in made]
            texts = [chunks for _, chunks in made]
        else:

            def box_record(i: int, j: int, c: int) -> dict:
                return self.record([self.classes[c]], self.det_seed(*batch[i], j), c)

            results = regenerate_boxes(canvases, boxes, box_record, self.backend, self.sample)
            texts = [None] * len(results)  # one seed per box: the manifest row says them all
        rows = []
        for (split, f, v), image, bx, label, chunks in zip(batch, results, boxes, labels, texts):
            made = (self.out.det if split == "train" else self.out.det_val).images() / variant_name(f, v)
            save_png(image, made, chunks)
            write_bytes(label_of(made), label.read_bytes())
            # the seeds really used: the canvas's for a text-conditioned model, one per box for the builtin
            seeds = (
                {"seed": self.det_seed(split, f, v)}
                if self.backend.text_conditioned
                else {"box_seeds": [self.det_seed(split, f, v, j) for j in range(len(bx))]}
            )
            rows.append(
                {
                    "file": made.relative_to(made.parent.parent).as_posix(),
                    "source": f.relative_to(self.real.root).as_posix(),
                    "strength": self.strength,
                    **self.provenance,
                    **seeds,
                    "boxes": [[c, *(round(t, 6) for t in b)] for c, b in bx],
                }
            )
        return rows
