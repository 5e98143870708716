"""Shared fixtures: the repo root, a params dict to edit, and helpers to run stages as DVC does."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from synthaug.dag import Dag  # noqa: F401  (the tests' view of dvc.yaml)
from synthaug.offline import harden
from tests.tiny_models import tiny_builtin

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
harden()  # tests import diffusers/ultralytics: keep them offline and out of $HOME too


@pytest.fixture(scope="session")
def base_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture
def params(base_params) -> dict:
    """A deep copy of params.yaml's contents, free to edit."""
    return copy.deepcopy(base_params)


def write_params(path: Path, params: dict) -> Path:
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def run_module(module: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run ``python -m <module> args`` as a DVC stage would (separate process, repo on the path)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, text=True, capture_output=True, timeout=1800
    )


def run_assemble(
    out: Path, params: dict, variant: str, real: Path, synthetic: Path, judge: Path = Path("none")
) -> subprocess.CompletedProcess:
    """The assemble stage into ``out/<variant>`` (metrics ``out/<variant>.json``, params ``out/params.yaml``)."""
    return run_module(
        "stages.assemble",
        "--params",
        str(write_params(out / "params.yaml", params)),
        "--variant",
        variant,
        "--real",
        str(real),
        "--synthetic",
        str(synthetic),
        "--judge",
        str(judge),
        "--out",
        str(out / variant),
        "--metrics",
        str(out / f"{variant}.json"),
    )


def tree_digest(root: Path) -> dict[str, str]:
    import hashlib

    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    """The ``error:`` lines a failed stage printed (progress bars aside, there must be one)."""
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="session")
def small_real(tmp_path_factory, base_params) -> Path:
    """A small embedded dataset (2 train images per class, 3 train canvases, 1 pool and 1 judge digit
    per class, 2 pool canvases; test larger than val, so a stage scoring the wrong split shows)
    made by the real stage."""
    params = copy.deepcopy(base_params)
    params["prepare"].update(pool_per_class=1, judge_per_class=1, shots_per_class=2, val_per_class=1, test_per_class=2)
    params["prepare"]["det"].update(train_images=3, val_images=2, test_images=3, pool_images=2)
    params["real_pool"]["per_class"] = 1
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
    params["generate"].update(steps=2, batch_size=30)
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


def sh(*cmd: str, cwd: Path) -> str:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", DVC_NO_ANALYTICS="1")
    proc = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True, timeout=1800)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


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
