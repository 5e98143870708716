"""synthaug.warm: a stage forked from a warm server is the process `python -m` would have started —
same arguments, folder, environment, streams, exit status and bytes — and never runs stale code."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthaug.warm import socket_path
from tests.helpers import ROOT, not_in_fast_tier, run_module, tree_digest

PROBE = """
import os, sys
print("argv", sys.argv[1:], "cwd", os.getcwd(), "stage", os.environ.get("DVC_STAGE"), "pid", os.getpid())
print("project modules", sorted(m for m in sys.modules if m.split(".")[0] in ("synthaug", "stages")))
print("torch loaded", "torch" in sys.modules)
import resource; mask = os.umask(0)
print("umask", oct(mask), "fsize", resource.getrlimit(resource.RLIMIT_FSIZE)[0])
print("to stderr", file=sys.stderr)
sys.exit(int(sys.argv[1]))
"""


def warm(cwd: Path, *args: str, preexec=None, **env: str) -> subprocess.Popen:
    not_in_fast_tier("python -m synthaug.warm")
    environ = dict(os.environ, PYTHONPATH=str(ROOT), SYNTHAUG_WARM_IDLE="20") | env
    return subprocess.Popen(
        [sys.executable, "-m", "synthaug.warm", *args],
        cwd=cwd,
        env=environ,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=preexec,
    )


def finished(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def until_warm(cwd: Path, **env: str) -> None:
    """The first request starts the server in the background and runs cold; wait until one is served warm."""
    (cwd / "probe.py").write_text(PROBE)
    deadline = time.monotonic() + 120
    while "torch loaded True" not in finished(warm(cwd, "probe", "0", **env))[1]:
        assert time.monotonic() < deadline, "no warm server after 120 s"
        time.sleep(0.5)


def test_the_socket_is_the_environments_less_what_dvc_sets_per_stage(monkeypatch):
    path = socket_path()
    monkeypatch.setenv("DVC_STAGE", "txt2img@ddim")
    assert socket_path() == path  # every stage of one `dvc repro` shares the server
    monkeypatch.setenv("HF_HOME", "/elsewhere")  # read at import time by the preloaded packages
    assert socket_path() != path


@pytest.mark.slow
def test_a_warm_child_is_the_process_python_m_would_start(tmp_path: Path):
    code, out, _ = finished(warm(tmp_path, "json.tool", "--help"))  # no server yet: it starts, this runs cold
    assert code == 0 and "usage" in out
    until_warm(tmp_path)

    def limited() -> None:  # what a shell's umask and ulimit -f would set
        os.umask(0o077)
        resource.setrlimit(resource.RLIMIT_FSIZE, (10**9, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    code, out, err = finished(warm(tmp_path, "probe", "3", "x y", preexec=limited, DVC_STAGE="a"))
    assert code == 3, err
    assert f"argv ['3', 'x y'] cwd {tmp_path} stage a" in out
    assert f"umask 0o77 fsize {10**9}" in out
    assert "to stderr" in err and "torch loaded True" in out
    first_pid = out.split("pid ")[1].split()[0]
    t0 = time.perf_counter()
    code, out, err = finished(warm(tmp_path, "probe", "0", DVC_STAGE="b"))
    assert code == 0 and "stage b" in out  # DVC's per-stage variables reach the child
    assert time.perf_counter() - t0 < 3  # served warm: no torch import (seconds)
    assert "torch loaded True" in out and out.split("pid ")[1].split()[0] != first_pid
    assert "project modules []" in out  # the server holds none of the project's modules


@pytest.mark.slow
def test_an_edited_module_is_never_served_stale(tmp_path: Path):
    until_warm(tmp_path)
    (tmp_path / "probe.py").write_text("print('version 1')")
    assert "version 1" in finished(warm(tmp_path, "probe"))[1]
    (tmp_path / "probe.py").write_text("print('version 2')\n")
    assert "version 2" in finished(warm(tmp_path, "probe"))[1]
    (tmp_path / "new_probe.py").write_text("print('new module')")  # added after the server listed the folder
    assert "new module" in finished(warm(tmp_path, "new_probe"))[1]


@pytest.mark.slow
def test_ctrl_c_reaches_the_stage(tmp_path: Path):
    (tmp_path / "sleeper.py").write_text(
        "import sys, time\nfrom synthaug.cli import run\n"
        "def main(argv):\n    print('ready', flush=True)\n    time.sleep(60)\n"
        "run(main)\n"
    )
    until_warm(tmp_path)
    proc = warm(tmp_path, "sleeper")
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)
    code, _, err = finished(proc)
    assert code == 130 and "error: interrupted" in err  # synthaug.cli.run's answer, as in a process of its own


@pytest.mark.slow
def test_a_stage_run_warm_is_byte_identical_to_a_fresh_interpreter(tmp_path: Path, params, small_real):
    """The judge trains a ResNet on 2 threads: a child of the warm server must round as a fresh process."""
    from tests.helpers import write_params

    params["judge"].update(steps=6, batch_size=8, eval_every=3, warmup_steps=1)
    args = ["--params", str(write_params(tmp_path / "p.yaml", params))]
    args += ["--train", str(small_real / "cls" / "train"), "--val", str(small_real / "cls" / "val")]
    args += ["--classes", str(small_real / "classes.json")]
    cold = run_module("stages.judge", *args, "--out", str(tmp_path / "cold"))
    assert cold.returncode == 0, cold.stderr
    until_warm(tmp_path)
    for name in ("warm1", "warm2"):  # the second from a server that has served a stage already
        code, _, err = finished(warm(ROOT, "stages.judge", *args, "--out", str(tmp_path / name)))
        assert code == 0, err
    digest = tree_digest(tmp_path / "cold")
    assert digest and tree_digest(tmp_path / "warm1") == digest == tree_digest(tmp_path / "warm2")


@pytest.mark.slow
def test_two_checkouts_sharing_a_server_each_run_their_own_code(tmp_path: Path):
    """dvc exp's temp workspaces and scratch clones share a server (same environment): a child must
    import synthaug from its own folder, also after the checkout that started the server is gone."""
    for name in ("a", "b"):
        shutil.copytree(ROOT / "synthaug", tmp_path / name / "synthaug", ignore=shutil.ignore_patterns("__pycache__"))
        (tmp_path / name / "which.py").write_text("import synthaug.errors; print('from', synthaug.errors.__file__)")
    env = {"PYTHONPATH": ""}  # as DVC runs a stage: the checkout is found as the working folder
    until_warm(tmp_path / "a", **env)
    shutil.rmtree(tmp_path / "a")
    code, out, err = finished(warm(tmp_path / "b", "which", **env))
    assert code == 0, err
    assert f"from {tmp_path / 'b' / 'synthaug' / 'errors.py'}" in out
