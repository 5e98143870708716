"""Bring-your-own data (stage ``prepare``, ``data.source: folders``): a user ImageFolder and an
Ultralytics dataset yaml, read and validated — every bad input is one ``DataError`` naming the file
(and line) and the fix (README "Bad input") — into the splits prepare writes."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageOps

from synthaug.errors import DataError
from synthaug.images import CLS_SPLITS, DET_FILL, DET_SPLITS, DetItem, letterbox, yolo_to_xyxy
from synthaug.params import Params, PrepareParams

log = logging.getLogger("prepare")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif"}


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


def user_dataset(params: Params, cls_root: Path, det_yaml: Path) -> tuple[list[str], dict, dict, dict]:
    """(class names, cls split → [(class, name, source path)], det split → [a callable loading one
    DetItem], where each split comes from) of the user's folders, validated."""
    p = params.prepare
    names, sources, cls_origin = folder_cls_sources(cls_root, p, params.seed)
    cls_items = {s: [(k, f"{i:05d}_{f.stem}", f) for i, (k, f) in enumerate(sources[s])] for s in CLS_SPLITS}
    det_sources, ids, det_origin = folder_det_sources(det_yaml, names, p, params.seed)
    size = params.data.det_image_size
    det_items = {
        s: [lambda f=f, lbl=lbl: load_det_item(f, lbl, ids, size) for _, f, lbl in det_sources[s]] for s in DET_SPLITS
    }
    return names, cls_items, det_items, {"cls": cls_origin, "det": det_origin}
