"""Queue safety on real DVC: an experiment queued with ``dvc exp run --queue`` reads a tiny Stable
Diffusion folder that git does not track. It is carried (small) and runs to its metrics, or it is
refused before queueing in one line (too large); a DVC-tracked one needs nothing; an experiment that
fails in its worker shows why in the app's table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import synthaug.queueing
from synthaug.app.experiments import Experiments
from synthaug.errors import UserError
from synthaug.queueing import external_deps, plan
from tests.helpers import ROOT
from tests.tiny_models import tiny_stable_diffusion

# The stage loads generate.model as the generation stages do, and fails (one line) above guidance 10.
STAGE = (
    "import json, sys, yaml; from pathlib import Path; from synthaug.offline import harden; harden(); "
    "from synthaug.diffusion import load_backend; g = yaml.safe_load(open('params.yaml'))['generate']; "
    "g['guidance'] > 10 and sys.exit('error: guidance ' + str(g['guidance']) + ' is too high for this model'); "
    "b = load_backend(g['model'], Path('models/builtin')); json.dump({'size': b.image_size}, open('m.json', 'w'))"
)


def sh(repo: Path, *cmd: str) -> str:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", DVC_NO_ANALYTICS="1")
    return subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git + DVC repo with the pipeline's params and one stage that loads generate.model; the tiny
    SD folder lies in models/tiny-sd, untracked."""
    repo = tmp_path / "repo"
    repo.mkdir()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stage = {"cmd": f'PYTHONPATH={ROOT} python -c "{STAGE}"', "params": ["generate.model", "generate.guidance"]}
    stage["metrics"] = [{"m.json": {"cache": False}}]
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"load": stage}}))
    tiny_stable_diffusion(repo / "models" / "tiny-sd")
    sh(repo, "git", "init", "-q")
    sh(repo, "dvc", "init", "-q")
    (repo / "models" / "builtin").mkdir()
    (repo / "models" / "builtin" / "README").write_text("unused\n")
    sh(repo, "git", "add", "params.yaml", "dvc.yaml", ".dvc", "models/builtin")
    sh(repo, "git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "one stage")
    os.environ["PATH"] = f"{Path(sys.executable).parent}:{os.environ['PATH']}"  # the app runs dvc from the venv
    return repo


def params_of(repo: Path, **generate) -> object:
    from synthaug.app.experiments import overrides_to_params

    old = Path.cwd()
    os.chdir(repo)  # params name paths relative to the repository, as stages see them
    try:
        return overrides_to_params(
            yaml.safe_load((repo / "params.yaml").read_text()), {f"generate.{k}": v for k, v in generate.items()}
        )
    finally:
        os.chdir(old)


@pytest.mark.slow
def test_a_large_untracked_model_is_refused_before_queueing_in_one_line(repo: Path, monkeypatch):
    monkeypatch.setattr(synthaug.queueing, "CARRY_LIMIT", 10_000)  # the tiny folder is ~1 MB: "large" here
    monkeypatch.chdir(repo)
    ex = Experiments(repo)
    with pytest.raises(UserError) as refused:
        ex.queue("generate.model: models/tiny-sd")
    message = str(refused.value)
    assert "\n" not in message and message.startswith("models/tiny-sd (generate.model): ")
    assert "not tracked by git or DVC" in message and "run `dvc add models/tiny-sd`" in message
    assert "Queued" not in ex.dvc("queue", "status")  # nothing was queued
    sh(repo, "dvc", "add", "-q", "models/tiny-sd")  # the fix the message names: now DVC gives it to the queue
    sh(repo, "git", "add", "models/tiny-sd.dvc", "models/.gitignore")
    assert plan(repo, params_of(repo, model="models/tiny-sd"), external_deps(repo)).copy_paths == []


@pytest.mark.slow
def test_a_queued_experiment_finds_the_untracked_model_and_a_failure_shows_its_reason(repo: Path, monkeypatch):
    monkeypatch.chdir(repo)
    ex = Experiments(repo)
    out = ex.queue("generate.model: models/tiny-sd")
    assert "--copy-paths models/tiny-sd" in out and "carried with --copy-paths: models/tiny-sd (generate.model;" in out
    ex.queue("generate.model: models/tiny-sd\ngenerate.guidance: 12")  # runs, and fails in its worker
    ex.start(1)
    deadline = time.time() + 600
    while time.time() < deadline:
        status = ex.dvc("queue", "status")
        if status.count("Success") + status.count("Failed") >= 2:
            break
        time.sleep(3)
    ex.dvc("queue", "stop")
    table = ex.table()
    ok = next(r for r in table if r[1] == "Success")
    failed = next(r for r in table if r[1] == "Failed")
    assert '"generate.model": "models/tiny-sd"' in ok[2]
    assert "guidance 12 is too high for this model" in failed[4]  # the reason, in the table
    assert table[0][0] == "workspace" and table[1][1] == "commit"  # listed from the start
    shown = json.loads(ex.dvc("exp", "show", "--json"))
    metrics = {
        rev["name"]: rev["data"]["metrics"]["m.json"].get("data")
        for row in shown
        for exp in row.get("experiments") or []
        for rev in exp.get("revs", [])
    }
    assert metrics[ok[0]] == {"size": 64}  # it loaded the model: its metric, not only a log line
