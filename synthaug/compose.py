"""Compositing digits onto canvases with exact boxes — used by ``prepare`` (real canvases) and by
``assemble`` (X-Paste: synthetic digits pasted onto real train canvases)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

INK_THRESHOLD = 64  # alpha below this is dropped, so the box is exactly the pasted ink


def border_distance(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(per-pixel distance from the background colour, that colour) of an RGB image holding one
    object: the background is taken as the median colour of the image's border."""
    rgb = np.asarray(rgb, dtype=np.float64)
    bg = np.median(np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]]), axis=0)
    return np.linalg.norm(rgb - bg, axis=2), bg


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def paste_digit(
    canvas: np.ndarray, digit: np.ndarray, side: int, x: int, y: int, rng: np.random.Generator
) -> tuple[float, float, float, float] | None:
    """Alpha-composite ``digit`` (white-on-black, used as the alpha mask) scaled to ``side`` px at
    (x, y) with an ink colour contrasting the local background; return its exact ink box in
    pixels (x0, y0, x1, y1), or None when no ink survives the scaling."""
    alpha = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BILINEAR), dtype=np.float64)
    alpha[alpha < INK_THRESHOLD] = 0
    ys, xs = np.nonzero(alpha)
    if len(xs) == 0:
        return None
    a = (alpha / 255.0)[..., None]
    region = canvas[y : y + side, x : x + side]
    dark = region.mean() > 127
    ink = rng.integers(0, 70, 3) if dark else rng.integers(190, 256, 3)
    canvas[y : y + side, x : x + side] = region * (1 - a) + ink * a
    return float(x + xs.min()), float(y + ys.min()), float(x + xs.max() + 1), float(y + ys.max() + 1)


def place_digits(
    canvas: np.ndarray,
    digits: Sequence[np.ndarray],
    labels: np.ndarray,
    count: int,
    min_size: float,
    max_size: float,
    max_iou: float,
    rng: np.random.Generator,
    boxes: list | None = None,
) -> tuple[list[int], list[tuple[float, ...]]]:
    """Paste ``count`` random digits (square white-on-black uint8 masks of any size) onto ``canvas``
    (float RGB, modified in place) at random sizes (a fraction of the canvas) and places whose ink
    overlaps no box in ``boxes`` by more than ``max_iou``; return the (classes, pixel xyxy boxes)
    pasted. Digits that find no place are skipped."""
    size = canvas.shape[0]
    taken = list(boxes or [])
    classes, pasted = [], []
    for _ in range(count):
        k = int(rng.integers(len(digits)))
        side = max(8, min(int(round(rng.uniform(min_size, max_size) * size)), size))
        ys, xs = np.nonzero(digits[k] >= INK_THRESHOLD)
        if len(xs) == 0:
            continue
        f = side / digits[k].shape[0]
        for _attempt in range(30):
            x, y = int(rng.integers(0, size - side + 1)), int(rng.integers(0, size - side + 1))
            # Predict the ink box from the unscaled digit to test overlap before painting.
            guess = (x + xs.min() * f, y + ys.min() * f, x + (xs.max() + 1) * f, y + (ys.max() + 1) * f)
            if all(box_iou(guess, b) <= max_iou for b in taken):
                break
        else:
            continue
        box = paste_digit(canvas, digits[k], side, x, y, rng)
        if box is not None:
            classes.append(int(labels[k]))
            pasted.append(box)
            taken.append(box)
    return classes, pasted
