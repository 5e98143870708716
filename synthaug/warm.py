"""Warm stage processes: ``python -m synthaug.warm <module> <args>`` runs ``python -m <module> <args>``
in a child forked from a server that has already imported torch, torchvision and diffusers, so a
DVC stage starts in a fraction of a second instead of paying those imports (seconds each) anew.

The child gets this process's working directory, environment, umask, resource limits, standard
streams and arguments, and this process exits with its status; Ctrl-C and SIGTERM are passed on to
it, and it ends itself if this process goes away. The server is started in the background on first
use (that stage runs in a fresh interpreter meanwhile), detached, and exits after ``IDLE_SECONDS``
without a request (``SYNTHAUG_WARM_IDLE``, default 120). It imports third-party packages only, after
:func:`synthaug.offline.harden` (which they read at import time), and keeps none of the project's
modules: each child imports them afresh from its own folder, so neither an edit nor another
checkout's code is ever served. Its socket is named by a hash of the interpreter, its installed
packages (the folders' modification times), the environment (less the variables DVC sets per stage)
and this module and ``offline.py``, so another venv, an upgrade, another environment or an edit of
either gets a server of its own. ``SYNTHAUG_WARM=0`` runs every module in a fresh interpreter.
Results are the same either way: a child runs the same code on the same inputs, and every stage
seeds and pins its threads itself (``tests/test_warm.py``).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import importlib
import json
import os
import resource
import runpy
import signal
import site
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path

IDLE_SECONDS = float(os.environ.get("SYNTHAUG_WARM_IDLE", "120"))
PRELOAD = ("torch", "torchvision", "diffusers", "accelerate", "safetensors.torch", "scipy.stats", "sklearn.metrics")
LIMITS = ("RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_STACK")
# differ per stage, shell or test, and no preloaded package reads them
VOLATILE = ("DVC_", "PWD", "OLDPWD", "SHLVL", "_", "PYTEST_CURRENT_TEST")


def socket_path() -> Path:
    """Where this interpreter's and environment's server listens."""
    h = hashlib.sha256(f"{sys.executable}\0{sys.prefix}".encode())
    for packages in site.getsitepackages():  # an install or upgrade adds and removes entries there
        with contextlib.suppress(OSError):
            h.update(str(os.stat(packages).st_mtime_ns).encode())
    env = sorted((k, v) for k, v in os.environ.items() if not k.startswith(VOLATILE))
    h.update(json.dumps(env).encode())
    for name in ("__init__.py", "offline.py", "warm.py"):
        h.update((Path(__file__).parent / name).read_bytes())
    return Path(tempfile.gettempdir()) / f"synthaug-warm-{os.getuid()}-{h.hexdigest()[:16]}.sock"


def _recv_exact(conn: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _child(conn: socket.socket, request: dict, fds: list[int]) -> None:
    """The forked child: become the client's ``python -m module args`` and report its exit status."""
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)  # the server ignores SIGCHLD; subprocess.wait needs it back
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C is a KeyboardInterrupt, as in python
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    if os.isatty(1):  # python buffers a terminal's stdout by line: progress shows as it happens
        sys.stdout.reconfigure(line_buffering=True)
    os.chdir(request["cwd"])
    os.umask(request["umask"])
    for name, limits in request["limits"].items():  # ulimits set where the stage was started
        with contextlib.suppress(ValueError, OSError):  # a limit above the server's own cannot be raised
            resource.setrlimit(getattr(resource, name), tuple(limits))
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[0] = request["cwd"]  # as `python -m` puts it
    importlib.invalidate_caches()  # files added since the server listed a folder
    atexit._clear()  # the server's exit handlers (its temp folder's removal) are not this stage's
    conn.sendall(struct.pack("!i", os.getpid()))

    def watch() -> None:  # the client went away (killed): end the stage as its own process would end
        if not conn.recv(1):
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True).start()
    code = 1
    try:
        sys.argv = [request["module"], *request["args"]]
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
            conn.sendall(struct.pack("!i", code))
        os._exit(code)


def serve(path: Path, lock_fd: int) -> None:
    """Import the heavy packages once, then fork a child per request until idle; ``lock_fd`` (the
    starting lock, held while importing) is let go once the socket accepts."""
    from synthaug.offline import harden

    harden()
    for name in PRELOAD:
        __import__(name)
    if "diffusers" in sys.modules:  # the lazy top level defers the models, where the import time is
        from diffusers import AutoencoderKL, UNet2DConditionModel, UNet2DModel  # noqa: F401
    for name in [m for m in sys.modules if m.split(".")[0] in ("synthaug", "stages")]:
        del sys.modules[name]  # a child imports the project from its own folder (another checkout's may differ)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    tmp = path.with_suffix(f".{os.getpid()}")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp))
    mine = os.stat(tmp).st_ino
    listener.listen(16)
    os.replace(tmp, path)  # clients see the socket only once it accepts
    os.close(lock_fd)
    listener.settimeout(IDLE_SECONDS)
    try:
        while True:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                return
            conn.settimeout(None)
            with conn:
                _, fds, _, _ = socket.recv_fds(conn, 1, 3)
                size = _recv_exact(conn, 4)
                body = _recv_exact(conn, struct.unpack("!i", size)[0]) if size else None
                if body is None or len(fds) != 3:
                    continue
                if os.fork() == 0:
                    listener.close()
                    _child(conn, json.loads(body), fds)
                for fd in fds:
                    os.close(fd)
    finally:
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_ino == mine:  # not a newer server's
                path.unlink()
                path.with_suffix(".lock").unlink()
        listener.close()


def _connect(path: Path) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
        return sock
    except OSError:
        sock.close()
        return None


def _server(path: Path) -> socket.socket | None:
    """A connection to the running server. When none runs, start one in the background and answer
    None: this stage runs in a fresh interpreter rather than wait for the server's imports, and the
    next stage finds it warm. The lock makes it one server: the starting one holds it until it listens."""
    sock = _connect(path)
    if sock:
        return sock
    with open(path.with_suffix(".lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None  # a server is starting
        sock = _connect(path)  # one came up since the first try
        if sock:
            return sock
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a server that died left its socket behind
        subprocess.Popen(
            [sys.executable, "-m", "synthaug.warm", "--serve", str(path), str(lock.fileno())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # not in the stage's process group: DVC's Ctrl-C goes to the child
            pass_fds=(lock.fileno(),),
            cwd=Path(__file__).resolve().parents[1],  # finds synthaug.warm; a child's sys.path[0] is its own folder
        )
    return None


def run_warm(module: str, args: list[str]) -> int | None:
    """Run ``python -m module args`` in a warm child; its exit status, or None when no server answers."""
    path = socket_path()
    sock = _server(path)
    if sock is None:
        return None
    with sock:
        socket.send_fds(sock, [b"F"], [0, 1, 2])
        mask = os.umask(0)
        os.umask(mask)
        request = {"module": module, "args": args, "cwd": os.getcwd(), "env": dict(os.environ), "umask": mask}
        request["limits"] = {name: resource.getrlimit(getattr(resource, name)) for name in LIMITS}
        body = json.dumps(request).encode()
        sock.sendall(struct.pack("!i", len(body)) + body)
        head = _recv_exact(sock, 4)
        if head is None:  # the server went away before starting the stage
            print(
                "warning: the warm server did not start the stage; running it in a fresh interpreter", file=sys.stderr
            )
            return None
        pid = struct.unpack("!i", head)[0]
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda s, _f: os.kill(pid, s))
        status = _recv_exact(sock, 4)
    if status is None:
        print(f"error: {module} ended without an exit status (killed?)", file=sys.stderr)
        return 1
    return struct.unpack("!i", status)[0]


def main(argv: list[str]) -> None:
    if argv[:1] == ["--serve"]:
        serve(Path(argv[1]), int(argv[2]))
        return
    if not argv or argv[0].startswith("-"):
        raise SystemExit("usage: python -m synthaug.warm <module> [args ...]")
    module, args = argv[0], argv[1:]
    if os.environ.get("SYNTHAUG_WARM", "1") != "0":
        code = run_warm(module, args)
        if code is not None:
            sys.exit(code)
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", module, *args])


if __name__ == "__main__":
    main(sys.argv[1:])
