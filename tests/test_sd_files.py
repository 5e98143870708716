"""A Stable Diffusion user's own files, offline with the network guarded: a single-file checkpoint
(written from the tiny pipeline in the original LDM layout, as A1111 and ComfyUI users hold them), a
LoRA and a textual-inversion embedding (built locally with peft), through the txt2img stage and the app."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthaug.app.handlers import App
from synthaug.files import read_jsonl
from synthaug.layout import Source
from synthaug.params import ParamsError, parse_params
from tests.helpers import CLASSES, ROOT, run_guarded, run_module, write_params
from tests.tiny_models import tiny_embedding, tiny_lora, tiny_single_file, tiny_stable_diffusion


@pytest.fixture(scope="module")
def sd_files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sd-files")
    folder = tiny_stable_diffusion(root / "tiny-sd")
    return {
        "folder": folder,
        "file": tiny_single_file(folder, root / "checkpoints" / "tiny-v1.safetensors"),
        "lora": tiny_lora(folder, root / "loras" / "ink.safetensors"),
        "embedding": tiny_embedding(folder, root / "embeddings" / "blot.safetensors"),
    }


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def txt2img(tmp: Path, params: dict, out: str) -> tuple[list[dict], dict[str, bytes]]:
    """The txt2img stage (dpmpp) with the network guarded: its manifest and its images' pixels."""
    proc = run_guarded(
        "stages.txt2img",
        *("--params", str(write_params(tmp / f"{out}.yaml", params)), "--scheduler", "dpmpp"),
        *("--prompts", str(tmp / "prompts.jsonl"), "--builtin", str(tmp / "unused")),
        *("--out", str(tmp / out), "--timings", str(tmp / f"{out}.json")),
    )
    assert proc.returncode == 0 and "NETWORK ATTEMPTS" not in proc.stderr, proc.stderr[-3000:]
    rows = read_jsonl(Source(tmp / out).manifest)
    return rows, {r["file"]: np.asarray(Image.open(Source(tmp / out).cls / r["file"])).tobytes() for r in rows}


@pytest.fixture
def sd_params(params, tmp_path: Path, sd_files) -> dict:
    params["generate"].update(model=str(sd_files["folder"]), steps=3, batch_size=8)
    params["prompts"]["per_class"] = 1
    (tmp_path / "classes.json").write_text(json.dumps(CLASSES))
    proc = run_module(
        "stages.prompts",
        *("--params", str(write_params(tmp_path / "params.yaml", params)), "--classes", str(tmp_path / "classes.json")),
        *("--out", str(tmp_path / "prompts.jsonl")),
    )
    assert proc.returncode == 0, proc.stderr
    return params


@pytest.mark.slow
def test_a_single_file_checkpoint_makes_the_folders_images_offline(tmp_path: Path, sd_params, sd_files):
    _, from_folder = txt2img(tmp_path, sd_params, "folder")
    sd_params["generate"].update(model=str(sd_files["file"]), model_config=str(sd_files["folder"]))
    rows, from_file = txt2img(tmp_path, sd_params, "file")
    assert from_file == from_folder  # the same weights, converted back from the original layout
    chunk = Image.open(Source(tmp_path / "file").cls / rows[0]["file"]).text["parameters"]
    digest = sha256(sd_files["file"])
    assert f"Model hash: {digest[:10]}, Model: tiny-v1," in chunk  # A1111's base name and AutoV2 hash
    assert rows[0]["model"] == "tiny-v1"
    exact = json.loads(Image.open(Source(tmp_path / "file").cls / rows[0]["file"]).text["synthaug"])
    assert exact["model"]["fingerprint"] == digest  # what sha256sum prints: resume and provenance


@pytest.mark.slow
def test_a_single_file_without_its_config_is_one_line_naming_the_key(tmp_path: Path, sd_params, sd_files):
    sd_params["generate"]["model"] = str(sd_files["file"])  # model_config: null, and no SD 1.5 in the cache
    proc = run_guarded(
        "stages.txt2img",
        *("--params", str(write_params(tmp_path / "p.yaml", sd_params)), "--scheduler", "ddim"),
        *("--prompts", str(tmp_path / "prompts.jsonl"), "--builtin", str(tmp_path / "unused")),
        *("--out", str(tmp_path / "out"), "--timings", str(tmp_path / "t.json")),
    )
    assert proc.returncode != 0 and "NETWORK ATTEMPTS" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "a single file holds weights, not its architecture" in last and "set generate.model_config" in last
    assert not (tmp_path / "out" / "cls" / "manifest.jsonl").exists()


def test_params_refuse_pickles_and_check_adapters(params, sd_files, tmp_path: Path):
    params["generate"]["model"] = "models/sd15.ckpt"
    with pytest.raises(ParamsError, match=r"generate.model: models/sd15.ckpt is a pickle, which can run code"):
        parse_params(params)
    params["generate"]["model"] = str(sd_files["folder"])
    for adapter, message in (
        (
            {"lora": str(tmp_path / "gone.safetensors"), "scale": 1.0},
            r"adapters\[0\].lora: .*gone.safetensors: no such",
        ),
        ({"lora": "ink.pt", "scale": 1.0}, r"adapters\[0\].lora: 'ink.pt' must be a .safetensors file"),
        ({"lora": str(sd_files["lora"]), "scale": 99}, r"adapters\[0\].scale: 99 must be a number in \[-8, 8\]"),
        ({"lora": str(sd_files["lora"])}, r"adapters\[0\]: .* must be \{lora: FILE.safetensors, scale: 0.8\}"),
    ):
        params["generate"]["adapters"] = [adapter]
        with pytest.raises(ParamsError, match=message):
            parse_params(params)
    params["generate"].update(model="builtin", adapters=[{"lora": str(sd_files["lora"]), "scale": 1.0}])
    with pytest.raises(ParamsError, match="generate.adapters: LoRA and textual inversion adapt a text-conditioned"):
        parse_params(params)


@pytest.mark.slow
def test_a_lora_changes_the_images_and_they_change_back_without_it(tmp_path: Path, sd_params, sd_files):
    plain_rows, plain = txt2img(tmp_path, sd_params, "plain")
    sd_params["generate"]["adapters"] = [{"lora": str(sd_files["lora"]), "scale": 1.0}]
    rows, with_lora = txt2img(tmp_path, sd_params, "lora")
    assert with_lora.keys() == plain.keys() and all(with_lora[k] != plain[k] for k in plain)
    assert rows[0]["adapters"] == [{"lora": str(sd_files["lora"]), "scale": 1.0, "sha256": sha256(sd_files["lora"])}]
    chunk = Image.open(Source(tmp_path / "lora").cls / rows[0]["file"]).text["parameters"]
    assert f'Lora hashes: "ink: {sha256(sd_files["lora"])[:10]}"' in chunk
    sd_params["generate"]["adapters"] = [{"lora": str(sd_files["lora"]), "scale": 0.0}]  # a scale of 0: no change
    assert txt2img(tmp_path, sd_params, "zero")[1] == plain
    sd_params["generate"]["adapters"] = []
    rows, back = txt2img(tmp_path, sd_params, "back")
    assert back == plain and "adapters" not in rows[0]


@pytest.fixture
def no_network(monkeypatch) -> list:
    """Every network attempt in this process fails, and is recorded."""
    import socket

    attempts: list = []

    def refuse(*args, **kwargs):
        attempts.append(args[:2])
        raise OSError("network disabled by test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", lambda self, *a: refuse(*a))
    return attempts


@pytest.mark.slow
def test_the_app_samples_a_single_file_with_a_lora_and_an_embedding(tmp_path: Path, sd_files, no_network):
    app = App(ROOT, out=tmp_path / "out")
    base = dict(mode="txt2img", model=str(sd_files["folder"]), prompt="a <blot> fox", negative_prompt="")
    base |= dict(scheduler="ddim", options="{}", steps=2, guidance=2.0, seed=3, batch=1, adapters="[]")
    plain = np.asarray(Image.open(app.sample(base)[0][0][0]).reduce(4))
    lora = json.dumps([{"lora": str(sd_files["lora"]), "scale": 0.8}])
    gallery, parameters, command = app.sample(base | {"adapters": lora})
    assert not np.array_equal(np.asarray(Image.open(gallery[0][0]).reduce(4)), plain)
    assert "Lora hashes: " in parameters and "-S 'generate.adapters=[{lora:" in command
    embedding = json.dumps([{"textual_inversion": str(sd_files["embedding"]), "token": "<blot>"}])
    with_token = np.asarray(Image.open(app.sample(base | {"adapters": embedding})[0][0][0]).reduce(4))
    assert not np.array_equal(with_token, plain)  # the prompt's <blot> is the embedding now
    # the single file, with params' generate.model_config naming its architecture (as a user's params.yaml would)
    g = dataclasses.replace(app.engine.params.generate, model_config=str(sd_files["folder"]))
    app.engine.params = dataclasses.replace(app.engine.params, generate=g)
    from_file = np.asarray(Image.open(app.sample(base | {"model": str(sd_files["file"])})[0][0][0]).reduce(4))
    assert np.array_equal(from_file, plain)
    assert no_network == []  # single file, LoRA and embedding all loaded without one network attempt
