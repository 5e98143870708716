"""Running a stage over several processes: the launcher ``dvc.yaml`` calls, and the process group a
stage joins.

``python -m synthaug.launch <section> <module> <stage args>`` reads ``launch.<section>`` from the
stage's own ``--params`` file and replaces itself with ``python -m <module> <stage args>`` — in
one warm process (``launcher: python``: ``python -m synthaug.warm``), or under ``accelerate launch``
or ``torchrun`` with ``processes`` processes on this machine. The launcher only starts processes; a
stage joins them through :func:`process_group` (Hugging Face accelerate's ``PartialState``: gloo on
the CPU, NCCL on GPUs), which is a group of one when nothing launched it. Several machines are
started with their own ``accelerate launch --config_file`` per machine (README, "Scaling up").
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

from synthaug.cli import configure_logging, pin_threads, run
from synthaug.params import LaunchParams, ParamsError, load_params


def free_port() -> int:
    """A free TCP port for the rendezvous, so parallel stages (``dvc queue start -j N``) never share one."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(cfg: LaunchParams, module: str, args: Sequence[str]) -> list[str]:
    """The command line that runs ``python -m module args`` as ``cfg`` says."""
    python = [sys.executable, "-m"]
    if cfg.launcher == "python":  # one process, forked warm (torch and diffusers imported already)
        return [*python, "synthaug.warm", module, *args]
    if cfg.launcher == "torchrun":
        return [
            *python,
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={cfg.processes}",
            "-m",
            module,
            *args,
        ]
    # accelerate's --cpu would run N CPU processes only through mpirun; its multi-process mode
    # (--multi_gpu, torch's elastic launcher) runs them anywhere, and the stage picks gloo on a CPU.
    group = ["--multi_gpu"] if cfg.processes > 1 else []
    return [
        *python,
        "accelerate.commands.launch",
        *group,
        f"--num_processes={cfg.processes}",
        "--num_machines=1",
        f"--main_process_port={free_port()}",
        "--mixed_precision=no",
        "--dynamo_backend=no",
        "-m",
        module,
        *args,
    ]


def process_group(device: str, cfg: LaunchParams) -> Any:
    """This process's place among those a launcher started (``num_processes``, ``process_index``,
    ``is_main_process``, ``device``, ``wait_for_everyone``); one process when none did. Sets the
    torch threads to ``cfg.threads`` whatever the launcher set (torchrun and accelerate set 1), so a
    result never depends on how many cores a machine has."""
    from accelerate import PartialState

    pin_threads(cfg.threads)
    return PartialState(cpu=device == "cpu")


_state: Any = None  # a worker process's setup(*setup_args), made once when it starts


def _start_worker(setup: Callable[..., Any], setup_args: tuple) -> None:
    global _state
    configure_logging()
    _state = setup(*setup_args)


def _work(work: Callable[..., Any], run: tuple) -> Any:
    return work(_state, *run)


def in_workers(
    work: Callable[..., Any], runs: Sequence[tuple], workers: int, setup: Callable[..., Any], setup_args: tuple
) -> list:
    """``work(state, *run)`` for every run, ``workers`` at a time in spawned processes, each of which
    makes its ``state = setup(*setup_args)`` once (a stage's ``launch.runs``); the results in the
    order of ``runs``. A run's error (one line, as in one process) stops the stage."""
    # spawn, not fork: a forked child of a process whose OpenMP pool has started can hang
    with ProcessPoolExecutor(
        workers, mp_context=get_context("spawn"), initializer=_start_worker, initargs=(setup, setup_args)
    ) as pool:
        return [done.result() for done in [pool.submit(_work, work, r) for r in runs]]


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 2 or "--params" not in argv[2:-1]:
        raise SystemExit("usage: python -m synthaug.launch <launch section> <stage module> --params PARAMS ...")
    section, module, args = argv[0], argv[1], argv[2:]
    params_file = args[args.index("--params") + 1]
    launch = load_params(params_file).launch
    sections = {n: getattr(launch, n) for n in launch.__dataclass_fields__}
    sections = {n: cfg for n, cfg in sections.items() if isinstance(cfg, LaunchParams)}  # launch.runs is no launcher
    if section not in sections:
        raise ParamsError(f"{params_file}: launch.{section}: no such section (known: {', '.join(sections)})")
    cmd = command(sections[section], module, args)
    sys.stdout.flush()
    os.execv(cmd[0], cmd)  # the stage (or its launcher) replaces this process: its exit status is DVC's


if __name__ == "__main__":
    run(main)
