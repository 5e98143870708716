"""Shared fixtures: params to edit, small real data, tiny synthetic data and judge, scratch DVC repos
(the helpers they and the tests call are in tests/helpers.py)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from synthaug.offline import harden
from tests.helpers import CLASSES, ROOT, for_small_real, run_module, sh, write_params
from tests.tiny_models import tiny_builtin

harden()  # tests import diffusers/ultralytics: keep them offline and out of $HOME too

# Fixtures that run stages (prepare, txt2img, judge, assemble, pretrain_yolo, a tiny study) or DVC:
# every test that uses one is slow, marked here so no test file has to remember.
SLOW_FIXTURES = {
    "small_real",
    "synthetic",
    "tiny_judge",
    "scratch_repo",
    "tiny",
    "ddim_dataset",
    "pretrained",
    "embedded",
}


def pytest_collection_modifyitems(items: list) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def base_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture
def params(base_params) -> dict:
    """A deep copy of params.yaml's contents, free to edit."""
    return copy.deepcopy(base_params)


@pytest.fixture(scope="session")
def small_real(tmp_path_factory, base_params) -> Path:
    """A small embedded dataset (2 train images per class, 3 train canvases, 1 pool and 1 judge digit
    per class, 2 pool canvases; test larger than val, so a stage scoring the wrong split shows)
    made by the real stage."""
    params = copy.deepcopy(base_params)
    params["prepare"].update(pool_per_class=1, judge_per_class=1, shots_per_class=2, val_per_class=1, test_per_class=2)
    params["prepare"]["det"].update(train_images=3, val_images=2, test_images=3, pool_images=2)
    for_small_real(params)
    tmp = tmp_path_factory.mktemp("real")
    proc = run_module(
        "stages.prepare",
        "--params",
        str(write_params(tmp / "p.yaml", params)),
        "--user-cls",
        "x",
        "--user-det",
        "x",
        "--out",
        str(tmp / "real"),
    )
    assert proc.returncode == 0, proc.stderr
    return tmp / "real"


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory, base_params) -> Path:
    """txt2img output of a tiny random builtin model (3 images per class) made by the real stages;
    its timings are in ``../../timing/ddim.json``."""
    tmp = tmp_path_factory.mktemp("syn")
    params = copy.deepcopy(base_params)
    params["prompts"]["per_class"] = 3
    params["generate"].update(steps=3, batch_size=30)  # 3: img2img at 0.4 needs int(steps × 0.4) ≥ 1
    write_params(tmp / "p.yaml", params)
    (tmp / "classes.json").write_text(json.dumps(CLASSES))
    assert (
        run_module(
            "stages.prompts",
            "--params",
            str(tmp / "p.yaml"),
            "--classes",
            str(tmp / "classes.json"),
            "--out",
            str(tmp / "prompts.jsonl"),
        ).returncode
        == 0
    )
    proc = run_module(
        "stages.txt2img",
        "--params",
        str(tmp / "p.yaml"),
        "--scheduler",
        "ddim",
        "--prompts",
        str(tmp / "prompts.jsonl"),
        "--builtin",
        str(tiny_builtin(tmp / "builtin", CLASSES)),
        "--out",
        str(tmp / "txt2img" / "ddim"),
        "--timings",
        str(tmp / "timing" / "ddim.json"),
    )
    assert proc.returncode == 0, proc.stderr
    return tmp / "txt2img" / "ddim"


@pytest.fixture(scope="session")
def tiny_judge(tmp_path_factory, base_params, small_real) -> Path:
    """The judge stage, a few steps on small_real's train split."""
    params = copy.deepcopy(base_params)
    params["judge"].update(steps=4, batch_size=8, eval_every=2, warmup_steps=1, lr=0.001)  # unsaturated scores
    tmp = tmp_path_factory.mktemp("judge")
    proc = run_module(
        "stages.judge",
        "--params",
        str(write_params(tmp / "p.yaml", params)),
        "--train",
        str(small_real / "cls" / "train"),
        "--val",
        str(small_real / "cls" / "val"),
        "--classes",
        str(small_real / "classes.json"),
        "--out",
        str(tmp / "judge"),
    )
    assert proc.returncode == 0, proc.stderr
    return tmp / "judge"


@pytest.fixture
def scratch_repo(tmp_path: Path) -> Path:
    """The committed + untracked-but-not-ignored files of this checkout, as a fresh git+DVC repo."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, text=True, capture_output=True, check=True
    ).stdout.split("\0")
    repo = tmp_path / "repo"
    for rel in filter(None, files):
        if (ROOT / rel).is_file():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, repo / rel)
    sh("git", "init", "-q", cwd=repo)
    sh("git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A", cwd=repo)
    sh("git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "scratch", cwd=repo)
    return repo
