"""Image helpers shared by stages: deterministic PNG writing, letterbox resize with exact box
remapping, contact sheets, and atomic output directories."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, PngImagePlugin

CLS_SPLITS = ("pool", "judge", "train", "val", "test")  # data/real/cls/<split>
DET_SPLITS = ("train", "val", "test", "pool")  # data/real/det/images/<split>; pool: pretrain_yolo's canvases
DET_FILL = 114  # Ultralytics' own letterbox grey


@dataclass(frozen=True)
class DetItem:
    """One detection image to write: the picture and its classes and normalised xyxy boxes."""

    image: Image.Image
    classes: tuple[int, ...]
    boxes: np.ndarray  # (n, 4) normalised xyxy


def save_png(image: Image.Image | np.ndarray, path: Path, text: dict[str, str] | None = None) -> None:
    """Write a PNG whose bytes depend only on the pixels (and ``text`` chunks, if given)."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    info = None
    if text:
        info = PngImagePlugin.PngInfo()
        for key, value in text.items():
            info.add_text(key, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG", pnginfo=info, compress_level=6)


@dataclass(frozen=True)
class Letterbox:
    """How an image was placed on a square canvas: ``new = old * scale + pad`` per axis."""

    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int
    size: int

    def remap_xyxy(self, boxes: np.ndarray, src_w: int, src_h: int) -> np.ndarray:
        """Map normalised xyxy boxes of the source image to normalised boxes of the canvas."""
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        out = np.empty_like(b)
        out[:, [0, 2]] = (b[:, [0, 2]] * src_w * self.scale_x + self.pad_x) / self.size
        out[:, [1, 3]] = (b[:, [1, 3]] * src_h * self.scale_y + self.pad_y) / self.size
        return out


def letterbox(image: Image.Image, size: int, mode: str, fill: int) -> tuple[Image.Image, Letterbox]:
    """Resize ``image`` to fit a ``size``×``size`` canvas keeping its aspect ratio, centred, padded."""
    image = image.convert(mode)
    w, h = image.size
    s = size / max(w, h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    resized = image if (nw, nh) == (w, h) else image.resize((nw, nh), Image.Resampling.BICUBIC)
    canvas = Image.new(mode, (size, size), fill if mode == "L" else (fill,) * 3)
    px, py = (size - nw) // 2, (size - nh) // 2
    canvas.paste(resized, (px, py))
    return canvas, Letterbox(nw / w, nh / h, px, py, size)


CLS_FILL = 0  # digits sit on black; padding must not add a frame a classifier could learn


def cls_image(image: Image.Image, size: int, channels: int) -> Image.Image:
    """A classification image as every dataset holds it, real or synthetic, whatever its source
    size and mode: letterboxed to ``size`` px with black bars, grey (``channels`` 1) or RGB."""
    return letterbox(image, size, "L" if channels == 1 else "RGB", CLS_FILL)[0]


def xyxy_to_yolo(box: Sequence[float]) -> tuple[float, float, float, float]:
    """Normalised xyxy → normalised (x-centre, y-centre, width, height)."""
    x0, y0, x1, y1 = box
    return (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0


def yolo_to_xyxy(box: Sequence[float]) -> tuple[float, float, float, float]:
    xc, yc, w, h = box
    return xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2


def read_yolo_boxes(path: Path) -> list[tuple[int, tuple[float, float, float, float]]]:
    """(class, normalised xyxy) rows of a label file this pipeline wrote (missing file: none)."""
    rows = []
    for line in path.read_text().splitlines() if path.exists() else []:
        c, *v = line.split()
        rows.append((int(c), yolo_to_xyxy([float(x) for x in v])))
    return rows


def format_yolo_line(cls: int, box_xyxy: Sequence[float]) -> str:
    return f"{cls} " + " ".join(f"{v:.6f}" for v in xyxy_to_yolo(box_xyxy))


def contact_sheet(
    tiles: Sequence[Image.Image],
    columns: int,
    boxes: Sequence[Sequence[Sequence[float]]] | None = None,
    tile: int = 64,
) -> Image.Image:
    """Grid of ``tiles`` (RGB); optional normalised xyxy boxes are drawn on each tile."""
    rows = max(1, -(-len(tiles) // columns))
    sheet = Image.new("RGB", (columns * (tile + 2), rows * (tile + 2)), (40, 40, 40))
    for i, img in enumerate(tiles):
        t = img.convert("RGB").resize((tile, tile), Image.Resampling.NEAREST)
        if boxes is not None:
            draw = ImageDraw.Draw(t)
            for x0, y0, x1, y1 in boxes[i]:
                draw.rectangle([x0 * tile, y0 * tile, x1 * tile - 1, y1 * tile - 1], outline=(255, 60, 60))
        sheet.paste(t, ((i % columns) * (tile + 2) + 1, (i // columns) * (tile + 2) + 1))
    return sheet


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temp dir beside ``final``; on success it replaces ``final``, on error it is removed,
    so a failed run never leaves a half-written output behind."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)


def link(src: Path, dst: Path) -> None:
    """Hard link ``src`` at ``dst`` (copy across filesystems)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def link_tree(src: Path, dst: Path, skip: Container[str] = ()) -> int:
    """Link every file under ``src`` at the same place under ``dst``, but those named in ``skip``; how many."""
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.name not in skip)
    for f in files:
        link(f, dst / f.relative_to(src))
    return len(files)


def add_cls_image(src: Path, dst: Path, size: int, channels: int) -> None:
    """A synthetic image into a classification set: linked when it already is a dataset image
    (``size`` px, the data's mode), else converted as real ones are (:func:`cls_image`) — a checkpoint
    samples at its own size. The original stays where it is, for the galleries."""
    with Image.open(src) as img:
        if img.size == (size, size) and img.mode == ("L" if channels == 1 else "RGB"):
            link(src, dst)
        else:
            save_png(cls_image(img, size, channels), dst.with_suffix(".png"))


def image_folder(root: Path, classes: Sequence[str]) -> list[tuple[Path, int]]:
    """(file, class index) of every PNG of an ImageFolder split, in a deterministic order."""
    return [(f, k) for k, name in enumerate(classes) for f in sorted((root / name).glob("*.png"))]


def load_array(path: Path, mode: str, fit: tuple[int, int] | None = None) -> np.ndarray:
    """Pixels of an image file in ``mode``; with ``fit`` = (size, channels), first made a dataset
    classification image (:func:`cls_image`), as a model of any native size produces them."""
    with Image.open(path) as img:
        return np.asarray((cls_image(img, *fit) if fit else img).convert(mode))
