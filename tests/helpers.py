"""Helpers the tests share: the repo root and class names, writing params, running a stage as DVC
does (a separate process, the repo on the path), running a shell command, reading a stage's errors."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from synthaug.dag import Dag  # noqa: F401  (the tests' view of dvc.yaml)

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
FAST = "SYNTHAUG_FAST_TESTS"  # set by `make test-fast`: a test that starts a stage or DVC here is mis-marked


def not_in_fast_tier(what: str) -> None:
    """Fail a test of the fast tier that starts a process it should not (its marker is missing)."""
    if os.environ.get(FAST):
        import pytest

        pytest.fail(f"{what}: this test runs stages or DVC; mark it @pytest.mark.slow (make test runs it)")


def for_small_real(params: dict) -> dict:
    """``params`` made to fit small_real's splits (2 train images, 1 pool digit per class): regimes of
    1 and 2 shots, and real-pool variants of at most the one pool digit."""
    params["trials"]["shots"] = [1, 2]
    params["real_pool"]["per_class"] = 1
    for name, v in list(params["variants"].items()):
        v.pop("seeds", None)  # the default's extra seeds are for its own regimes
        if v.get("per_class", 0) > 1:
            del params["variants"][name]
    return params


def write_params(path: Path, params: dict) -> Path:
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


# Prepended to a child process's code: every network attempt fails and is recorded in ``attempts``.
GUARD = """
import socket
attempts = []
def _refuse(*args, **kwargs):
    attempts.append(args[:2])
    raise OSError("network disabled by test")
socket.getaddrinfo = _refuse
socket.create_connection = _refuse
socket.socket.connect = lambda self, *a: _refuse(*a)
"""


def run_guarded(module: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``run_module`` with the network guarded: any attempt fails, and is printed as ``NETWORK ATTEMPTS``
    on stderr when the process ends (a stage that swallowed the error still shows it)."""
    not_in_fast_tier(f"python -m {module}")
    code = GUARD + textwrap.dedent(
        f"""
        import atexit, runpy, sys
        atexit.register(lambda: attempts and print("NETWORK ATTEMPTS", attempts, file=sys.stderr))
        sys.argv = {[module, *args]!r}
        runpy.run_module({module!r}, run_name="__main__", alter_sys=True)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, text=True, capture_output=True, timeout=1800)


def run_module(module: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run ``python -m <module> args`` as a DVC stage would (separate process, repo on the path)."""
    not_in_fast_tier(f"python -m {module}")
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
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    """The ``error:`` lines a failed stage printed (progress bars aside, there must be one)."""
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


def sh(*cmd: str, cwd: Path) -> str:
    not_in_fast_tier(" ".join(cmd))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", DVC_NO_ANALYTICS="1")
    proc = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True, timeout=1800)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout
