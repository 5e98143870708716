"""The real user's path, end to end with real DVC: their own folders (RGB photos of odd sizes and
modes, a YOLO dataset whose names are in their own order) and a text-conditioned Stable Diffusion
folder whose native size (64 px) is not ``data.image_size`` (32 px), ``generate.size: null``,
through every stage to the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image, ImageDraw

from synthaug.layout import Dataset, Real, Source
from tests.helpers import Dag, sh
from tests.tiny_models import tiny_stable_diffusion

SHAPES = ("circle", "square", "triangle")  # the class folders; sorted, so class ids 0, 1, 2
YAML_NAMES = {0: "triangle", 1: "circle", 2: "square"}  # the user's own dataset yaml order


def draw(shape: str, box: tuple[int, int, int, int], image: Image.Image, colour: tuple[int, int, int]) -> None:
    d = ImageDraw.Draw(image)
    x0, y0, x1, y1 = box
    if shape == "circle":
        d.ellipse(box, fill=colour)
    elif shape == "square":
        d.rectangle(box, fill=colour)
    else:
        d.polygon([(x0, y1), ((x0 + x1) // 2, y0), (x1, y1)], fill=colour)


def make_user_folders(root: Path) -> None:
    """cls/{train,val,test}/<shape>/ photos of odd sizes in RGB, RGBA, P, L and CMYK JPEG; det/ a YOLO
    dataset (train/val/test, no pool) of 150x90 scenes with exact boxes, names in YAML_NAMES' order."""
    rng = np.random.default_rng(0)
    modes = ("RGB", "RGBA", "P", "L", "CMYK")
    for split, n in (("train", 6), ("val", 2), ("test", 2)):
        for k, shape in enumerate(SHAPES):
            for i in range(n):
                w, h = int(rng.integers(40, 90)), int(rng.integers(40, 90))
                img = Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(0, 120, 3)))
                draw(
                    shape,
                    (w // 5, h // 5, w - w // 5, h - h // 4),
                    img,
                    tuple(int(v) for v in rng.integers(140, 256, 3)),
                )
                mode = modes[(i + k) % len(modes)]
                folder = root / "cls" / split / shape
                folder.mkdir(parents=True, exist_ok=True)
                img.convert(mode).save(folder / f"{split}{i}.{'jpg' if mode == 'CMYK' else 'png'}")
    ids = {name: i for i, name in YAML_NAMES.items()}
    for split, n in (("train", 6), ("val", 3), ("test", 3)):
        (root / "det" / "images" / split).mkdir(parents=True)
        (root / "det" / "labels" / split).mkdir(parents=True)
        for i in range(n):
            img = Image.new("RGB", (150, 90), tuple(int(v) for v in rng.integers(0, 100, 3)))
            lines = []
            for j, shape in enumerate(SHAPES[: 1 + (i % 3)]):
                x0, y0 = 10 + 45 * j, int(rng.integers(5, 40))
                draw(shape, (x0, y0, x0 + 35, y0 + 35), img, (230, 230, 230))
                lines.append(f"{ids[shape]} {(x0 + 18) / 150:.6f} {(y0 + 18) / 90:.6f} {36 / 150:.6f} {36 / 90:.6f}")
            img.save(root / "det" / "images" / split / f"scene{i}.jpg", quality=95)
            (root / "det" / "labels" / split / f"scene{i}.txt").write_text("\n".join(lines) + "\n")
    (root / "det" / "data.yaml").write_text(
        yaml.safe_dump(
            {"path": ".", "train": "images/train", "val": "images/val", "test": "images/test", "names": YAML_NAMES}
        )
    )


def small_budgets(p: dict, model: Path) -> None:
    p["data"].update(source="folders", channels=3, image_size=32, det_image_size=64)
    p["pretrain"]["vae"].update(steps=2, batch_size=4)
    p["pretrain"]["unet"].update(steps=2, batch_size=4)
    p["prompts"]["per_class"] = 2
    p["generate"].update(model=str(model), size=None, steps=2, batch_size=8)
    p["txt2img"]["schedulers"] = ["ddim"]
    p["img2img"].update(strengths=[0.5], variants_per_source=1)
    p["variants"] = {
        "baseline": {"source": "none", "ratio": 0.0},
        "real_pool": {"source": "real/pool", "ratio": 1.0},
        "ddim": {"source": "txt2img/ddim", "ratio": 1.0},
        "i2i_50": {"source": "img2img/0.5", "ratio": 1.0},
    }
    p["real_pool"]["per_class"] = 2
    p["judge"].update(steps=4, batch_size=8, eval_every=2, warmup_steps=1)
    p["filter"]["min_confidence"] = 0.01  # the judge sees the converted 32 px images
    p["trials"].update(shots=[1], resnet_seeds=[0, 1], yolo_seeds=[0], yolo_variants=["baseline", "ddim"])
    p["train_resnet"].update(steps=4, batch_size=8, eval_every=2, warmup_steps=1)
    p["pretrain_yolo"].update(epochs=1, close_mosaic=0, batch=2, imgsz=64)
    p["train_yolo"].update(epochs=1, close_mosaic=0, imgsz=64, batch=4)
    p["study"].update(steps=[1, 2], per_class=2)
    p["report"]["gallery_per_class"] = 1


@pytest.mark.slow
def test_user_folders_and_a_stable_diffusion_folder_run_to_the_report(scratch_repo: Path, tmp_path: Path):
    repo = scratch_repo
    make_user_folders(repo / "data" / "user")
    model = tiny_stable_diffusion(tmp_path / "tiny-sd")  # native 64 px
    params = yaml.safe_load((repo / "params.yaml").read_text())
    small_budgets(params, model)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    sh("dvc", "repro", cwd=repo)

    assert "up to date" in sh("dvc", "status", cwd=repo)
    dag = Dag(repo)
    real, ddim = Real(dag.arg("prepare", "--out")), Dataset(dag.arg("assemble@ddim", "--out"))
    assert real.classes() == list(SHAPES)
    # the user's yaml calls a circle 1; here it is class 0 (folders, sorted)
    label = real.det.labels("train").glob("*.txt")
    assert {line.split()[0] for f in label for line in f.read_text().splitlines()} == {"0", "1", "2"}
    original = next((Source(dag.arg("txt2img@ddim", "--out")).cls / "circle").glob("*.png"))
    assert Image.open(original).size == (64, 64)  # sampled at the model's own size, kept for the galleries
    for f in ddim.cls("synthetic").rglob("*.png"):
        assert (Image.open(f).size, Image.open(f).mode) == ((32, 32), "RGB")  # converted like the real ones
    xpaste = sorted(ddim.det.images("train").glob("xpaste_*.png"))
    assert len(xpaste) == 6 and Image.open(xpaste[0]).size == (64, 64)
    assembled = json.loads(dag.arg("assemble@ddim", "--metrics").read_text())  # the judge filtered 32 px images
    assert assembled["filter"]["kept"] + assembled["filter"]["dropped"] == 6  # 2 prompts per class
    assert assembled["counts"]["cls_synthetic"] == assembled["filter"]["kept"]
    for v in params["variants"]:
        m = json.loads(dag.arg(f"evaluate@{v}", "--out").read_text())
        assert 0.0 <= m["resnet"]["1shot"]["seed0"]["accuracy"] <= 1.0
    page = dag.arg("report", "--out").read_text()
    assert all(f"<b>{v}</b>" in page for v in params["variants"])  # every variant in the results table
    assert "the train split (no pool/ folder)" in page  # what the pool is, said where results are read
