"""dvc.yaml as DVC itself reads it: each stage's command, with its matrix and foreach expanded for the
repo's params.yaml. dvc.yaml is the one place that chooses every path; code that needs to find an
output (the tests, the benchmarks) asks it here instead of writing the path again."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_closure(path: Path, root: Path = ROOT) -> set[Path]:
    """The file and every synthaug module (under ``root``) it imports, transitively — imports inside
    functions too."""
    seen: set[Path] = set()
    todo = [path]
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        text = f.read_text()
        modules = re.findall(r"^\s*(?:from|import) (synthaug(?:\.\w+)+)", text, re.M)
        for names in re.findall(r"^\s*from synthaug import ([\w, ]+)", text, re.M):  # one module or several
            modules += [f"synthaug.{m.strip()}" for m in names.split(",")]
        for m in modules:  # a module file, or a package's __init__ (synthaug.app)
            module = root / (m.replace(".", "/") + ".py")
            todo.append(module if module.is_file() else module.with_suffix("") / "__init__.py")
    return seen


def code_deps(stage: str, root: Path = ROOT) -> set[str]:
    """The code deps dvc.yaml lists for ``stages.<stage>``: its file, the ``stages`` package (it makes
    the process offline first) and every synthaug module either imports — nothing else, so a library
    edit stales only the stages that import what changed."""
    files = module_closure(root / "stages" / f"{stage}.py", root)
    files |= module_closure(root / "stages" / "__init__.py", root)
    return {f.relative_to(root).as_posix() for f in files}


class Dag:
    """The stages of ``root``'s dvc.yaml, in an order that runs each after what it depends on."""

    def __init__(self, root: Path = ROOT):
        import networkx as nx
        from dvc.repo import Repo

        root = self.root = Path(root)
        if not (root / ".dvc").is_dir():  # a folder with a dvc.yaml but no DVC repo yet (a test's)
            subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=root, check=True)
        with Repo(str(root)) as repo:
            order = reversed(list(nx.topological_sort(repo.index.graph)))
            self.commands = {stage.name: stage.cmd for stage in order}  # name: "txt2img@ddim", wherever the cwd is

    def arg(self, stage: str, flag: str) -> Path:
        """The path a stage's command passes as ``flag`` (``--out``), under root."""
        words = self.commands[stage].split()
        return self.root / words[words.index(flag) + 1]

    def run(self, stage: str, code: Path = ROOT, **kwargs) -> subprocess.CompletedProcess:
        """Run the stage's command in root as ``dvc repro`` would, with ``code`` (this checkout's
        stages and synthaug) on the path."""
        env = dict(os.environ, PYTHONPATH=str(code), PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
        cmd = self.commands[stage]
        return subprocess.run(cmd, shell=True, cwd=self.root, env=env, text=True, capture_output=True, **kwargs)
