"""prompts, txt2img and img2img as stages: files, manifests, PNG chunks, determinism, resume, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthaug.files import read_jsonl
from synthaug.layout import Source, label_of
from synthaug.params import parse_params
from synthaug.prompting import make_records
from synthaug.seeds import stable_seed
from tests.helpers import ROOT, error_lines, run_module, tree_digest, write_params
from tests.tiny_models import tiny_builtin, tiny_stable_diffusion

CLASSES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@pytest.fixture(scope="module")
def builtin_dir(tmp_path_factory) -> Path:
    return tiny_builtin(tmp_path_factory.mktemp("model") / "builtin", CLASSES)


@pytest.fixture
def gen_params(params) -> dict:
    params["prompts"]["per_class"] = 2
    params["generate"].update(batch_size=4, steps=3)
    return params


def prompts_file(tmp_path: Path, params: dict) -> Path:
    (tmp_path / "classes.json").write_text(json.dumps(CLASSES))
    proc = run_module(
        "stages.prompts",
        "--params",
        str(write_params(tmp_path / "params.yaml", params)),
        "--classes",
        str(tmp_path / "classes.json"),
        "--out",
        str(tmp_path / "prompts.jsonl"),
    )
    assert proc.returncode == 0, proc.stderr
    return tmp_path / "prompts.jsonl"


def txt2img(tmp_path: Path, params: dict, builtin: Path, scheduler: str = "ddim", out: str = "out"):
    return run_module(
        "stages.txt2img",
        "--params",
        str(write_params(tmp_path / "params.yaml", params)),
        "--scheduler",
        scheduler,
        "--prompts",
        str(tmp_path / "prompts.jsonl"),
        "--builtin",
        str(builtin),
        "--out",
        str(tmp_path / out),
        "--timings",
        str(tmp_path / f"{out}.json"),
    )


def pngs(folder: Path) -> dict[str, str]:
    return {k: v for k, v in tree_digest(folder).items() if k.endswith(".png")}


def manifest(folder: Path) -> list[dict]:
    return read_jsonl(Source(folder).manifest)


def test_prompt_records_are_deterministic_and_seeded_per_record(params):
    p = parse_params(params)
    a = make_records(CLASSES, p.prompts, p.seed)
    assert len(a) == 10 * p.prompts.per_class and len({r["seed"] for r in a}) == len(a)
    assert a == make_records(CLASSES, p.prompts, p.seed)
    params["prompts"]["per_class"] = 3
    fewer = make_records(CLASSES, parse_params(params).prompts, p.seed)
    assert [r for r in a if int(r["id"][-4:]) < 3] == fewer  # a record's seed never depends on the others
    assert {r["prompt"] for r in a if r["name"] == "seven"} >= {
        "a photo of the digit seven",
        "seven, handwritten, thick stroke",
    }


@pytest.mark.slow
def test_txt2img_stage_outputs_and_is_byte_identical(tmp_path: Path, gen_params, builtin_dir):
    prompts_file(tmp_path, gen_params)
    proc = txt2img(tmp_path, gen_params, builtin_dir)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    rows = manifest(out)
    assert len(rows) == 20 and not (out / ".resume").exists()
    assert rows[0] == {
        "file": "zero/zero-0000.png",
        "class": 0,
        "name": "zero",
        "prompt": "a photo of the digit zero",
        "negative_prompt": gen_params["prompts"]["negative_prompt"],
        "seed": rows[0]["seed"],
        "scheduler": "ddim",
        "steps": 3,
        "guidance": 2.0,
        "model": str(builtin_dir),
    }
    img = Image.open(Source(out).cls / rows[5]["file"])
    assert img.size == (32, 32) and img.mode == "L"
    text = img.text["parameters"].splitlines()
    assert text[0] == rows[5]["prompt"] and text[1].startswith("Negative prompt: ")
    assert text[2].startswith(
        f"Steps: 3, Sampler: DDIM, Schedule type: Automatic, CFG scale: 2, Seed: {rows[5]['seed']}, Size: 32x32"
    )
    exact = json.loads(img.text["synthaug"])  # the exact chunk: what remakes the image
    assert exact["record"]["seed"] == rows[5]["seed"] and exact["scheduler"]["class"] == "DDIMScheduler"
    assert exact["scheduler"]["config"]["num_train_timesteps"] == 1000 and exact["model"]["dtype"] == "float32"
    batch = gen_params["generate"]["batch_size"]
    assert [r["seed"] for r in exact["batch"]] == [r["seed"] for r in rows[5 - 5 % batch :][:batch]]  # its batch
    again = txt2img(tmp_path, gen_params, builtin_dir, out="again")
    assert again.returncode == 0 and pngs(out) == pngs(tmp_path / "again") and manifest(tmp_path / "again") == rows


@pytest.mark.slow
def test_txt2img_resumes_after_kill_9_byte_identically(tmp_path: Path, gen_params, builtin_dir):
    gen_params["prompts"]["per_class"] = 6
    gen_params["generate"].update(batch_size=2, steps=10)
    prompts_file(tmp_path, gen_params)
    assert txt2img(tmp_path, gen_params, builtin_dir, out="whole").returncode == 0
    cmd = [
        sys.executable,
        "-m",
        "stages.txt2img",
        "--params",
        str(tmp_path / "params.yaml"),
        "--scheduler",
        "ddim",
        "--prompts",
        str(tmp_path / "prompts.jsonl"),
        "--builtin",
        str(builtin_dir),
        "--out",
        str(tmp_path / "out"),
        "--timings",
        str(tmp_path / "out.json"),
    ]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    journal = tmp_path / "out" / ".resume"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(journal.glob("batch*.jsonl"))) < 3 and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(journal.glob("batch*.jsonl")))
    assert 3 <= done < 30 and not Source(tmp_path / "out").manifest.exists(), "the run was not interrupted"
    resumed = txt2img(tmp_path, gen_params, builtin_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming, {2 * done} of 60 already done" in resumed.stderr
    assert pngs(tmp_path / "out") == pngs(tmp_path / "whole")
    assert manifest(tmp_path / "out") == manifest(tmp_path / "whole")


@pytest.mark.slow
def test_changed_params_do_not_reuse_a_persisted_output(tmp_path: Path, gen_params, builtin_dir):
    prompts_file(tmp_path, gen_params)
    assert txt2img(tmp_path, gen_params, builtin_dir).returncode == 0
    before = pngs(tmp_path / "out")
    gen_params["generate"]["guidance"] = 4.0
    assert txt2img(tmp_path, gen_params, builtin_dir).returncode == 0
    after = pngs(tmp_path / "out")
    assert before.keys() == after.keys() and all(before[k] != after[k] for k in before)


@pytest.mark.slow
@pytest.mark.parametrize(
    "edit, scheduler, message",
    [
        (lambda p: None, "dddim", "--scheduler dddim: no schedulers.dddim section"),
        (lambda p: p["generate"].update(model="./models/missing"), "ddim", "./models/missing: model not found"),
        (lambda p: p["schedulers"]["dpmpp"].update(solver_ordr=2), "dpmpp", "has no option 'solver_ordr'"),
        (
            lambda p: p["schedulers"].update(eulr={}),
            "ddim",
            "schedulers.eulr: unknown scheduler; did you mean 'euler'?",
        ),
        (lambda p: p["img2img"].update(strengths=[0.4, 1.5]), "ddim", "img2img.strengths[1]: 1.5 is outside (0, 1]"),
    ],
)
def test_generation_errors_are_one_clear_line(tmp_path: Path, gen_params, builtin_dir, edit, scheduler, message):
    prompts_file(tmp_path, gen_params)
    edit(gen_params)
    proc = txt2img(tmp_path, gen_params, builtin_dir, scheduler=scheduler)
    assert proc.returncode == 1 and len(error_lines(proc)) == 1 and message in error_lines(proc)[0], proc.stderr
    assert not Source(tmp_path / "out").manifest.exists()


@pytest.mark.slow
def test_txt2img_stage_runs_a_stable_diffusion_folder(tmp_path: Path, gen_params):
    sd = tiny_stable_diffusion(tmp_path / "tiny-sd")
    gen_params["generate"].update(model=str(sd), steps=3, batch_size=8)
    gen_params["prompts"]["per_class"] = 1
    prompts_file(tmp_path, gen_params)
    proc = txt2img(tmp_path, gen_params, tmp_path / "unused", scheduler="dpmpp")
    assert proc.returncode == 0, proc.stderr
    rows = manifest(tmp_path / "out")
    img = Image.open(Source(tmp_path / "out").cls / rows[0]["file"])
    assert len(rows) == 10 and img.size == (64, 64) and img.mode == "RGB" and rows[0]["model"] == str(sd)
    assert "Sampler: DPM++ 2M" in img.text["parameters"]
    before = pngs(tmp_path / "out")
    tiny_stable_diffusion(sd, seed=1)  # weights replaced in the same folder: no old batch may be resumed
    assert txt2img(tmp_path, gen_params, tmp_path / "unused", scheduler="dpmpp").returncode == 0
    after = pngs(tmp_path / "out")
    assert before.keys() == after.keys() and all(before[k] != after[k] for k in before)


def test_img2img_stage_keeps_labels_and_boxes(tmp_path: Path, gen_params, builtin_dir, small_real):
    gen_params["img2img"]["variants_per_source"] = 2
    proc = run_module(
        "stages.img2img",
        "--params",
        str(write_params(tmp_path / "params.yaml", gen_params)),
        "--strength",
        "0.5",
        "--real",
        str(small_real),
        "--builtin",
        str(builtin_dir),
        "--out",
        str(tmp_path / "out"),
        "--timings",
        str(tmp_path / "out.json"),
    )
    assert proc.returncode == 0, proc.stderr
    out = Source(tmp_path / "out")
    timing = json.loads((tmp_path / "out.json").read_text())
    assert timing["cls"]["images"] == 40 and timing["det"]["images"] == 6 and timing["processes"] == 1
    assert timing["cls"]["seconds_per_image"] > 0
    cls_rows = read_jsonl(out.manifest)
    assert len(cls_rows) == 10 * 2 * 2
    steps = gen_params["generate"]["steps"]
    for row in cls_rows[:4]:
        src = np.asarray(Image.open(small_real / row["source"]))
        img = Image.open(out.cls / row["file"])
        new = np.asarray(img)
        assert row["file"].startswith(row["name"] + "/") and new.shape == src.shape and not np.array_equal(src, new)
        assert row["steps"] == steps and row["denoising_steps"] == int(steps * 0.5)  # what SDEdit really ran
        chunk = img.text["parameters"]  # the img2img recipe's chunks, as the app writes them
        assert f"Steps: {steps}, Sampler: DDIM" in chunk and ", Denoising strength: 0.5, Eta: 0, Version: " in chunk
        assert json.loads(img.text["synthaug"])["strength"] == 0.5
    det_rows = read_jsonl(out.det.manifest)
    assert len(det_rows) == 3 * 2
    for row in det_rows:
        stem, src_label = Path(row["file"]).stem, label_of(small_real / row["source"])
        assert label_of(out.det.root / row["file"]).read_text() == src_label.read_text()
        assert len(row["boxes"]) == len(src_label.read_text().splitlines()) and row["strength"] == 0.5
        assert row["denoising_steps"] == int(steps * 0.5)
        v = int(stem.rsplit("-v", 1)[1])  # the builtin regenerates each box with its own seed: those are recorded
        assert "seed" not in row and row["box_seeds"] == [
            stable_seed(gen_params["seed"], "img2img-det", Path(row["source"]).name, v, j)
            for j in range(len(row["boxes"]))
        ]
        new = np.asarray(Image.open(out.det.root / row["file"]))
        assert new.shape == (128, 128, 3)
        assert not np.array_equal(new, np.asarray(Image.open(small_real / row["source"])))


@pytest.mark.slow
def test_stages_write_nothing_to_home(tmp_path: Path, gen_params, builtin_dir):
    home = tmp_path / "home"
    home.mkdir()
    prompts_file(tmp_path, gen_params)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "YOLO_", "MPL", "XDG_"))}
    env.update(HOME=str(home), PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "stages.txt2img",
            "--params",
            str(tmp_path / "params.yaml"),
            "--scheduler",
            "unipc",
            "--prompts",
            str(tmp_path / "prompts.jsonl"),
            "--builtin",
            str(builtin_dir),
            "--out",
            str(tmp_path / "out"),
            "--timings",
            str(tmp_path / "t.json"),
        ],
        cwd=ROOT,
        env=env,
        text=True,
        capture_output=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert list(home.iterdir()) == []


def test_pretrain_is_deterministic_and_loads_as_builtin(tmp_path: Path, params, small_real):
    from synthaug.diffusion import Sampling, load_backend

    params["pretrain"]["vae"].update(steps=3, batch_size=8)
    params["pretrain"]["unet"].update(steps=3, batch_size=8, channels=[16, 32])
    write_params(tmp_path / "params.yaml", params)
    for out in ("a", "b"):
        proc = run_module(
            "stages.pretrain",
            "--params",
            str(tmp_path / "params.yaml"),
            "--pool",
            str(small_real / "cls" / "train"),
            "--classes",
            str(small_real / "classes.json"),
            "--out",
            str(tmp_path / out),
            "--metrics",
            str(tmp_path / f"{out}.json"),
        )
        assert proc.returncode == 0, proc.stderr
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.json").read_text()
    model = load_backend("builtin", tmp_path / "a")
    assert model.classes == CLASSES and model.scheduler_config["clip_sample"] is False
    sampling = Sampling.of("ddim", model.scheduler_config, {}, 2, 2.0)
    assert model.txt2img([{"class": 3, "seed": 1}], sampling).shape == (1, 32, 32)


def test_regenerate_boxes_repaints_only_inside_each_box_in_the_old_ink():
    """The builtin path of img2img's detection: every box's crop goes to the model as a mask, and
    what comes back is painted in the old digit's ink, inside the crop only."""
    from types import SimpleNamespace

    from synthaug.regenerate import regenerate_boxes

    canvas = np.full((64, 64, 3), 200, np.uint8)  # light background
    canvas[10:20, 12:18] = (20, 30, 40)  # a dark "digit" in box 0
    boxes = [[(3, (10 / 64, 8 / 64, 20 / 64, 22 / 64))]]
    seen = []

    def sample(images, records):  # the model: a full bar down the middle of every crop
        seen.append((len(images), [r["seed"] for r in records]))
        out = np.zeros((len(images), 32, 32), np.uint8)
        out[:, :, 12:20] = 255
        return out

    backend = SimpleNamespace(channels=1, image_size=32)
    (result,) = regenerate_boxes([canvas], boxes, lambda i, j, c: {"class": c, "seed": 100 + j}, backend, sample)
    assert seen == [(1, [100])]
    changed = np.argwhere((result != canvas).any(axis=2))
    assert changed.size and changed.min(0).tolist() >= [8 - 3, 10 - 3] and changed.max(0).tolist() <= [22 + 3, 20 + 3]
    ink = result[(result != 200).all(axis=2)]
    assert np.abs(ink.astype(int) - (20, 30, 40)).max(axis=1).min() <= 2  # the new digit wears the old ink
