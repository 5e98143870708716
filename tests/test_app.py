"""The app (synthaug/app/: handlers, engine, experiments, tabs): its handlers called directly with tiny models, a real
experiment queued on a one-stage DVC repo, and the page driven in Debian's headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from synthaug.app.engine import Cancelled, Request
from synthaug.app.experiments import Experiments, exp_run_argv, hydra_value, request_overrides
from synthaug.app.handlers import App
from synthaug.errors import UserError
from synthaug.params import ParamsError
from synthaug.version import VERSION
from tests.helpers import CLASSES, ROOT, Dag, write_params
from tests.tiny_models import tiny_builtin, tiny_stable_diffusion


@pytest.fixture(scope="module")
def app(tmp_path_factory, base_params) -> App:
    """The app over a scratch folder holding dvc.yaml, small params and a tiny builtin model."""
    root = tmp_path_factory.mktemp("app")
    shutil.copy(ROOT / "dvc.yaml", root / "dvc.yaml")
    params = json.loads(json.dumps(base_params))
    params["generate"].update(batch_size=4, steps=25)
    params["prompts"]["per_class"] = 2
    write_params(root / "params.yaml", params)
    dag = Dag(root)
    tiny_builtin(dag.arg("pretrain", "--out"), CLASSES)
    return App(root, out=root / ".gradio" / "outputs")


def form(**changes) -> dict:
    base = dict(
        mode="txt2img",
        model="builtin",
        label="seven",
        prompt="a photo of the digit seven",
        negative_prompt="blurry",
        scheduler="ddim",
        options='{"eta": 0.0}',
        steps=4,
        guidance=2.0,
        seed=11,
        random_seed=False,
        batch=2,
        upload=None,
        real_image=None,
        strength=0.5,
    )
    return base | changes


def original(shown: str) -> Path:
    """The PNG the engine wrote for a gallery item (a small one is shown as a zoomed copy in preview/)."""
    path = Path(shown)
    return path.parent.parent / path.name if path.parent.name == "preview" else path


def test_txt2img_is_seeded_and_every_png_carries_its_parameters(app: App):
    gallery, parameters, _ = app.sample(form())
    assert len(gallery) == 2 and gallery[1][1].startswith("seed 12")  # image i has seed + i
    first = Image.open(original(gallery[0][0]))
    assert first.size == (32, 32) and first.text["parameters"] == parameters
    shown = Image.open(gallery[0][0])  # seen whole at an integer zoom, each pixel a crisp 8 × 8 square
    assert shown.size == (256, 256) and shown.text == first.text
    assert np.array_equal(np.asarray(shown)[::8, ::8], np.asarray(first))
    assert parameters.splitlines() == [
        "a photo of the digit seven",
        "Negative prompt: blurry",
        "Steps: 4, Sampler: DDIM, Schedule type: Automatic, CFG scale: 2, Seed: 11, Size: 32x32, "
        f"Model: models/builtin, Eta: 0, Version: synthaug {VERSION}",
    ]
    exact = json.loads(first.text["synthaug"])  # the exact chunk beside it
    assert exact["record"]["seed"] == 11 and [r["seed"] for r in exact["batch"]] == [11, 12]
    assert exact["scheduler"]["step_options"] == {"eta": 0.0} and exact["model"]["id"] == "models/builtin"
    again, _, _ = app.sample(form())
    assert original(again[0][0]).read_bytes() == original(gallery[0][0]).read_bytes()
    other, _, _ = app.sample(form(seed=99))
    assert not np.array_equal(np.asarray(Image.open(original(other[0][0]))), np.asarray(first))
    loads = app.engine.loads
    app.sample(form(scheduler="dpmpp", options="{}"))  # another scheduler: the model is not loaded again
    assert app.engine.loads == loads == 1


def test_every_step_reports_progress_and_cancel_stops_after_the_current_one(app: App):
    seen = []

    def progress(value: tuple[int, int], desc: str) -> None:
        seen.append(value)
        app.cancel.set()  # the Cancel button, pressed during the first step

    before = sorted(app.engine.out.glob("*"))
    with pytest.raises(Cancelled, match="cancelled"):
        app.sample(form(steps=10, batch=1), progress)
    assert seen == [(1, 10)] and sorted(app.engine.out.glob("*")) == before  # stopped, nothing written
    seen.clear()
    app.sample(form(steps=3, batch=1), lambda value, desc: seen.append(value))  # a new run is not cancelled
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_img2img_takes_an_odd_sized_rgba_upload(app: App, tmp_path: Path):
    upload = tmp_path / "odd.png"
    Image.new("RGBA", (37, 23), (200, 10, 10, 128)).save(upload)
    gallery, parameters, command = app.sample(form(mode="img2img", upload=str(upload), strength=0.4, batch=1))
    out = Image.open(original(gallery[0][0]))
    assert out.size == (32, 32) and out.mode == "L"  # letterboxed to the model's size and mode
    assert "Steps: 4, " in parameters and ", Denoising strength: 0.4, " in parameters
    assert ", 1 of 4 steps denoised, " in gallery[0][1]  # SDEdit runs int(4 × 0.4) of the schedule
    with pytest.raises(UserError, match=r"strength: 0.2 × steps \(4\) leaves no denoising step"):
        app.sample(form(mode="img2img", upload=str(upload), strength=0.2, batch=1))
    assert "img2img.strengths=[0.4,0.8]" in command  # 0.4 is already a strength of params.yaml


def test_load_parameters_from_a_png_fills_the_form_back(app: App):
    gallery, _, _ = app.sample(form(scheduler="euler", options="{}", steps=5, guidance=3.5, seed=7, batch=1))
    values = app.load_png(gallery[0][0])  # the zoomed copy carries the same chunks
    assert {k: values[k] for k in ("prompt", "negative_prompt", "scheduler", "steps", "guidance", "seed")} == {
        "prompt": "a photo of the digit seven",
        "negative_prompt": "blurry",
        "scheduler": "euler",
        "steps": 5,
        "guidance": 3.5,
        "seed": 7,
    }
    assert values["model"] == "builtin" and values["mode"] == "txt2img" and values["not_applied"] == ""


def test_load_parameters_reads_a_web_ui_png_and_lists_what_it_cannot_apply(app: App, tmp_path: Path):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(
        "parameters",
        "a fox\nNegative prompt: blurry,\nlowres\nSteps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 5, "
        'Size: 512x512, Model: "sd, 1.5", Clip skip: 2, Hires upscale: 2',
    )
    Image.new("RGB", (8, 8)).save(tmp_path / "web.png", pnginfo=info)
    values = app.load_png(str(tmp_path / "web.png"))
    assert values["negative_prompt"] == "blurry,\nlowres" and values["scheduler"] == "dpmpp"
    options = json.loads(values["options"])  # params' dpmpp options, with the chunk's Karras sigmas over them
    assert options == app.engine.params.schedulers["dpmpp"] | {"use_karras_sigmas": True}
    assert values["model"] == "sd, 1.5" and values["not_applied"] == "Clip skip: 2, Hires upscale: 2"


@pytest.mark.slow
def test_a_pipeline_record_is_the_txt2img_stage_png_byte_for_byte(app: App):
    dag = app.dag
    classes = dag.arg("prompts", "--classes")
    classes.parent.mkdir(parents=True, exist_ok=True)
    classes.write_text(json.dumps(CLASSES))
    for stage in ("prompts", "txt2img@ddim"):
        proc = dag.run(stage)
        assert proc.returncode == 0, proc.stderr[-2000:]
    records = app.prompt_records()
    gallery, parameters, command = app.pipeline(records[5]["id"], "ddim")  # second image of the second batch
    stage_png = dag.arg("txt2img@ddim", "--out") / "cls" / records[5]["name"] / f"{records[5]['id']}.png"
    assert original(gallery[0][0]).read_bytes() == stage_png.read_bytes()
    assert command == "dvc repro txt2img@ddim" and parameters == Image.open(stage_png).text["parameters"]


def test_an_xy_grid_has_one_labelled_cell_per_pair_and_the_same_seed(app: App):
    path, seconds = app.compare(form(batch=1), ("scheduler", "ddim, pndm"), ("steps", "2, 4, 6"))
    grid = Image.open(path)
    side = 128  # each 32 px cell shown at 128 px, under its column label and beside its row label
    assert grid.size == (150 + 2 * (side + 4), 28 + 3 * (side + 4))
    assert seconds["headers"] == ["s / image", "scheduler ddim", "scheduler pndm"]
    assert [row[0] for row in seconds["data"]] == ["steps 2", "steps 4", "steps 6"]
    assert all(len(row) == 3 and all(s > 0 for s in row[1:]) for row in seconds["data"])
    chunk = grid.text["parameters"]  # the first cell's chunk with the axes, as A1111's X/Y plot writes it
    assert 'Script: X/Y plot, X Type: scheduler, X Values: "ddim, pndm", Y Type: steps, Y Values: "2, 4, 6"' in chunk
    one = app.engine.generate(
        Request.of(
            app.engine.params,
            label="seven",
            prompt="a photo of the digit seven",
            negative_prompt="blurry",
            options={"eta": 0.0},
            steps=4,
            seed=11,
        )
    )[0]
    cell = np.asarray(grid.convert("L"))[28 + side + 4 : 28 + 2 * side + 4, 150 : 150 + side]
    expected = np.asarray(Image.open(one.path).resize((side, side), Image.Resampling.NEAREST))
    assert np.array_equal(cell, expected)  # cell (ddim, 4 steps) is that image: the same seed everywhere


def test_the_copy_as_command_is_the_exact_dvc_exp_run_argv(app: App):
    req = Request.of(
        app.engine.params,
        label="seven",
        prompt="seven",
        negative_prompt="blurry, low quality",
        scheduler="euler",
        options={"timestep_spacing": "trailing"},
        steps=30,
        guidance=3.0,
    )
    argv = exp_run_argv(request_overrides(req, app.engine.params), app.experiments.raw_params())
    assert argv == [
        "dvc", "exp", "run",
        "-S", "generate.model=builtin",
        "-S", "generate.steps=30",
        "-S", "generate.guidance=3.0",
        "-S", 'prompts.negative_prompt="blurry, low quality"',  # quoted: a comma would be a Hydra sweep
        "-S", "txt2img.schedulers=[ddim,pndm,dpmpp,euler]",
        "-S", "+schedulers.euler.timestep_spacing=trailing",  # a key params.yaml lacks is added with +
    ]  # fmt: skip
    assert hydra_value("0.5") == '"0.5"' and hydra_value(True) == "true"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"steps": 0}, "steps: 0 is out of range; use a value a whole number from 1 to 1000"),
        ({"mode": "img2img", "strength": 1.5, "real_image": "x"}, "strength: 1.5 is out of range"),
        ({"scheduler": "dddim"}, "scheduler: unknown 'dddim'; did you mean 'ddim'?"),
        ({"options": '{"solver_ordr": 2}', "scheduler": "dpmpp"}, "has no option 'solver_ordr'"),
        ({"options": "{eta: 0}"}, "scheduler options: not JSON"),
        ({"model": "./no/such/model"}, "./no/such/model: model not found"),
        ({"label": "sevn"}, "did you mean 'seven'?"),
        ({"mode": "img2img"}, "img2img: upload an image or pick a real one"),
    ],
)
def test_bad_input_is_one_clear_message_and_writes_nothing(app: App, changes: dict, message: str):
    before = sorted(app.engine.out.glob("*")) if app.engine.out.is_dir() else []
    with pytest.raises(UserError) as err:
        app.sample(form(**changes))
    assert message in str(err.value) and "\n" not in str(err.value)
    assert (sorted(app.engine.out.glob("*")) if app.engine.out.is_dir() else []) == before


def huge_png(path: Path, side: int) -> Path:
    """A valid PNG header claiming ``side`` × ``side`` pixels (a few bytes on disk, 400 MP decoded)."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    body = struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body + b"\x00\x00\x00\x00IEND\xaeB`\x82")
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: (p.write_text("not a picture"), p)[1], "not an image Pillow can read"),
        (lambda p: (p.write_bytes(b""), p)[1], "empty file"),
        (lambda p: huge_png(p, 20_000), "too many pixels to decode; upload an image at most 8192 px a side"),
        (lambda p: huge_png(p, 9_000), "9000×9000 px; upload an image at most 8192 px a side"),
    ],
)
def test_a_bad_upload_is_one_clear_message(app: App, tmp_path: Path, make, message: str):
    upload = make(tmp_path / "upload.png")
    with pytest.raises(UserError, match=message):
        app.sample(form(mode="img2img", upload=str(upload)))


def test_the_sample_tab_runs_a_stable_diffusion_folder(app: App, tmp_path: Path):
    sd = tiny_stable_diffusion(tmp_path / "tiny-sd")
    gallery, parameters, _ = app.sample(form(model=str(sd), prompt="a cat", steps=2, batch=1, options="{}"))
    assert Image.open(original(gallery[0][0])).size == (64, 64) and f"Model: {sd}" in parameters


def test_experiment_overrides_are_checked_as_params_are(app: App):
    assert app.experiments.overrides("generate.steps: 30\nprompts.negative_prompt: blurry, bad\n") == {
        "generate.steps": 30,
        "prompts.negative_prompt": "blurry, bad",
    }
    with pytest.raises(ParamsError, match="generate.stepz: unknown key; did you mean 'steps'"):
        app.experiments.overrides("generate.stepz: 30")
    with pytest.raises(ParamsError, match="generate.steps"):
        app.experiments.overrides("generate.steps: -1")
    with pytest.raises(UserError, match="line 1: write key: value"):
        app.experiments.overrides("generate.steps 30")
    assert app.experiments.check("generate.stepz: 30") == "error: generate.stepz: unknown key; did you mean 'steps'?"
    assert app.experiments.check("generate.steps: 30") == "ok: 1 override(s), valid params"


def test_two_revisions_side_by_side_and_the_results_as_the_report_writes_them(tmp_path: Path):
    """HEAD against itself: no param differs, every variant's metrics are in both columns, formatted as
    the report formats them; the galleries are what this machine's DVC cache holds of them."""
    app = App(ROOT, out=tmp_path / "out")
    differ, metrics, left, right = app.experiments.compare("HEAD", "HEAD", tmp_path)
    assert differ == []
    data = json.loads((ROOT / "metrics" / "summary.json").read_text())
    summary = data["regimes"][data["headline"]]  # the full train set's, where the detectors train too
    assert {row[0] for row in metrics} == set(summary) and all(row[2] == row[3] for row in metrics)
    real_pool = next(r for r in metrics if r[0] == "real_pool" and r[1] == "ResNet accuracy")
    acc = summary["real_pool"]["accuracy"]
    assert real_pool[2] == f"{acc['mean']:.3f} ± {acc['ci95']:.3f}"
    assert real_pool[4].startswith(f"{acc['diff_vs_baseline']['mean']:+.3f} ± ") and ", p_Holm " in real_pool[4]
    assert len(left) == len(right) and all(Path(p).is_file() for p, _ in left)
    rows = app.summary_rows()  # the Results tab: every regime, no raw floats
    assert [f"real_pool @ {data['headline']}", "ResNet accuracy", real_pool[2], real_pool[4]] in rows
    assert {r[0].split(" @ ")[1] for r in rows} == set(data["regimes"])
    with pytest.raises(UserError, match="experiment 'no-such-exp': cannot read params.yaml"):
        app.experiments.compare("HEAD", "no-such-exp", tmp_path)


def test_an_experiments_curves_are_read_at_its_revision():
    """The committed pipeline's curves at HEAD (an experiment name works the same way): one line per
    variant, one per scheduler; an unknown revision is one clear message."""
    ex = Experiments(ROOT)
    training, study = ex.curves("HEAD")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    largest = params["trials"]["shots"][-1]  # the variants that train at the full train set
    trained = [v for v, cfg in params["variants"].items() if largest in cfg.get("shots", [largest])]
    assert [line.get_label() for line in training.axes[0].get_lines()] == trained and "baseline" in trained
    assert [line.get_label() for line in study.axes[0].get_lines()] == params["txt2img"]["schedulers"]
    with pytest.raises(UserError, match="experiment 'no-such-exp': cannot read params.yaml"):
        ex.curves("no-such-exp")


@pytest.mark.slow
def test_a_queued_experiment_runs_on_a_one_stage_repo(tmp_path: Path):
    """The Experiments tab's buttons on a real DVC repo: one stage reading generate.steps."""
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(ROOT / "params.yaml", repo / "params.yaml")
    (repo / "dvc.yaml").write_text(
        yaml.safe_dump(
            {
                "stages": {
                    "steps": {
                        "cmd": "python -c \"import yaml,json; p=yaml.safe_load(open('params.yaml'));"
                        " json.dump({'steps': p['generate']['steps']}, open('m.json','w'))\"",
                        "params": ["generate.steps"],
                        "metrics": [{"m.json": {"cache": False}}],
                    }
                }
            }
        )
    )
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", DVC_NO_ANALYTICS="1")
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "repro", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "one stage"]):  # fmt: skip
        subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True)
    os.environ["PATH"] = env["PATH"]  # the app runs dvc from the venv, as make app does
    ex = Experiments(repo)
    assert "dvc exp run --queue -S generate.steps=7" in ex.queue("generate.steps: 7")
    ex.start(2)  # two daemon workers: the call must not wait for them (they hold no pipe of ours)
    deadline = time.time() + 300
    while time.time() < deadline and "Success" not in ex.dvc("queue", "status"):
        time.sleep(2)
    ex.dvc("queue", "stop")
    rows = ex.table()
    assert any('"generate.steps": 7' in row[2] for row in rows), rows
    assert json.loads((repo / "m.json").read_text())["steps"] == 25  # the workspace was never touched


def chromium() -> str:
    return shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"


@pytest.mark.slow
def test_the_app_in_headless_chromium_generates_and_stays_on_loopback(tmp_path: Path):
    """make app's server, driven like a user: a bad option shows one message and the app keeps serving;
    set a seed, click Generate, read the parameters; every request the page makes goes to loopback, and
    nothing is written to the home directory."""
    from playwright.sync_api import sync_playwright

    home = tmp_path / "home"
    home.mkdir()
    port = 7900 + os.getpid() % 80
    env = dict(os.environ, HOME=str(home), PYTHONPATH=str(ROOT))
    server = subprocess.Popen(
        [sys.executable, "-m", "synthaug.app", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    requests: list[str] = []
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
            browser = p.chromium.launch(executable_path=chromium(), args=[*flags, "--no-first-run", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(f"http://127.0.0.1:{port}/")
            options = page.get_by_role("textbox", name="scheduler options (JSON)")
            options.fill("{eta: 0}")  # bad input first: one message, and the app keeps serving
            page.locator("#generate").click()
            page.get_by_text("scheduler options: not JSON").first.wait_for(timeout=60_000)
            options.fill('{"eta": 0.0}')
            page.locator("#seed input").fill("42")
            page.locator("#generate").click()
            page.locator("#gallery img").first.wait_for(timeout=120_000)
            text = page.locator("#parameters textarea").input_value()
            page.screenshot(path=str(tmp_path / "app.png"))
            browser.close()
    finally:
        server.terminate()
        server.wait(30)
    assert "Seed: 42, Size: 32x32, Model: models/builtin" in text
    pixels = np.asarray(Image.open(tmp_path / "app.png").convert("L"), dtype=np.float64)
    assert pixels.std() > 10  # a page was drawn, not a blank screen
    assert requests and all(url.startswith(f"http://127.0.0.1:{port}/") for url in requests if "://" in url), [
        u for u in requests if not u.startswith(f"http://127.0.0.1:{port}/")
    ]
    assert not any(home.iterdir()), sorted(home.rglob("*"))
