"""Real DVC runs in a scratch clone of the working tree."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


def sh(*cmd: str, cwd: Path) -> str:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", DVC_NO_ANALYTICS="1")
    proc = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True, timeout=1800)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


@pytest.fixture
def scratch_repo(tmp_path: Path) -> Path:
    """The committed + untracked-but-not-ignored files of this checkout, as a fresh git+DVC repo."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, text=True,
                           capture_output=True, check=True).stdout.split("\0")
    repo = tmp_path / "repo"
    for rel in filter(None, files):
        if (ROOT / rel).is_file():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, repo / rel)
    sh("git", "init", "-q", cwd=repo)
    sh("git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A", cwd=repo)
    sh("git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "scratch", cwd=repo)
    return repo


@pytest.mark.slow
def test_prepare_repro_is_deterministic_and_status_clean(scratch_repo: Path):
    sh("dvc", "repro", "-f", "prepare", cwd=scratch_repo)
    first = (scratch_repo / "dvc.lock").read_text()
    sh("dvc", "repro", "-f", "prepare", cwd=scratch_repo)
    assert (scratch_repo / "dvc.lock").read_text() == first
    assert "up to date" in sh("dvc", "status", "prepare", cwd=scratch_repo)
