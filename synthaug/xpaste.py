"""X-Paste (stage ``assemble``): synthetic objects cut out of their generated images and pasted onto
real detection canvases, with exact boxes. A cut-out is the pixels whose distance from the image's
border colour exceeds ``assemble.paste_threshold`` of the maximum; it is pasted, in an ink colour
contrasting the spot, at a free place of a real train canvas (:func:`synthaug.compose.place_digits`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from synthaug.compose import border_distance, place_digits
from synthaug.files import write_text
from synthaug.images import format_yolo_line, letterbox, read_yolo_boxes, save_png
from synthaug.layout import Detection, label_of
from synthaug.params import AssembleParams, DetectionPrepareParams


def cutout(path: Path, threshold: float, max_side: int) -> np.ndarray:
    """White-on-black uint8 mask of the object in a generated image (see the module docstring),
    square, and no larger than ``max_side`` px: the largest a digit is pasted at (a 512 px Stable
    Diffusion image is cut out at full size, then scaled down once)."""
    with Image.open(path) as img:
        dist, _ = border_distance(np.asarray(img.convert("RGB")))
    mask = np.where(dist >= threshold * max(dist.max(), 1e-6), dist / max(dist.max(), 1e-6), 0.0)
    mask = Image.fromarray((mask * 255).round().astype(np.uint8))
    return np.asarray(letterbox(mask, min(max(mask.size), max_side), "L", 0)[0])


def xpaste(
    canvases: list[Path],
    objects: list[tuple[Path, int]],
    n: int,
    a: AssembleParams,
    det: DetectionPrepareParams,
    rng: np.random.Generator,
    out: Detection,
) -> None:
    """Write ``n`` train canvases ``xpaste_<i>.png`` (and labels) into ``out``: real canvas ``i``
    (cycling), its own boxes kept, plus ``a.paste_per_image`` cut-outs of the ``objects`` (generated
    image, class) at free places, each cut out at most as large as a digit is pasted."""
    with Image.open(canvases[0]) as first:
        max_side = max(8, round(det.max_object_size * first.width))  # as place_digits sizes them
    cutouts = [cutout(f, a.paste_threshold, max_side) for f, _ in objects]
    classes = np.array([k for _, k in objects])
    for i in range(n):
        src = canvases[i % len(canvases)]
        canvas = np.asarray(Image.open(src).convert("RGB"), dtype=np.float64).copy()
        size = canvas.shape[0]
        old = read_yolo_boxes(label_of(src))
        got_classes, got_boxes = place_digits(
            canvas,
            cutouts,
            classes,
            a.paste_per_image,
            det.min_object_size,
            det.max_object_size,
            det.max_iou,
            rng,
            boxes=[tuple(v * size for v in b) for _, b in old],
        )
        made = out.images("train") / f"xpaste_{i:05d}.png"
        save_png(np.clip(np.rint(canvas), 0, 255).astype(np.uint8), made)
        lines = [format_yolo_line(c, b) for c, b in old]
        lines += [format_yolo_line(c, [v / size for v in b]) for c, b in zip(got_classes, got_boxes)]
        write_text(label_of(made), "".join(x + "\n" for x in lines))
