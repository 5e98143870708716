"""Queue safety: what a queued experiment will find, checked before it is queued.

DVC runs ``dvc exp run --queue`` in a temporary copy of the repository that holds what git tracks and
what DVC checks out of its cache — nothing else. A checkpoint in an untracked ``models/sd15`` or photos
in an ignored ``data/user`` are not there, and the experiment fails minutes later, in ``dvc queue logs``.
So :func:`plan` looks at every input first — each stage's deps that no stage makes, and the files the
params name (``generate.model``, ``generate.model_config``, ``generate.adapters``) — and each one is:

- tracked by git, or by DVC with its data in the cache (``dvc add data/user``), or made by a stage;
- outside the repository, by an absolute path (the Hugging Face cache, ``/data/models/sd15``);
- else carried with ``--copy-paths`` when small (a copy per experiment; said, with its size), or
  refused in one line that names the path and the fix.

The CLI is the app's Queue button without the app::

    python -m synthaug.queueing -S generate.model=models/sd15 -S 'generate.steps=10,25'   # checks, then queues
    python -m synthaug.queueing --check -S ...                                         # only says what it would run
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthaug.errors import UserError
from synthaug.params import Params

CARRY_LIMIT = 64 * 2**20  # bytes of untracked input carried with --copy-paths; more is refused, never copied


@dataclass
class Plan:
    """What queueing needs: the paths to carry with ``--copy-paths`` and a line per decision."""

    copy_paths: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def param_paths(params: Params) -> tuple[dict[str, str], dict[str, str]]:
    """The local paths the params name, and the hub ids, by key (``builtin`` and null name neither)."""
    g = params.generate
    named = {"generate.model": g.model, "generate.model_config": g.model_config}
    named |= {f"generate.adapters[{i}]": a.get("lora") or a.get("textual_inversion") for i, a in enumerate(g.adapters)}
    paths, hub = {}, {}
    for key, value in named.items():
        if value is None or value == "builtin":
            continue
        is_hub_id = value.count("/") == 1 and not value.startswith((".", "/", "~")) and not Path(value).exists()
        (hub if is_hub_id and not key.startswith("generate.adapters") else paths)[key] = value
    return paths, hub


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "model_index.json"), str)


def _git(root: Path, *args: str) -> list[str]:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if proc.returncode:
        raise UserError(f"{root}: git {' '.join(args)} failed ({proc.stderr.strip().splitlines()[-1:]})")
    return [line for line in proc.stdout.split("\0") if line]


def _size(files: Sequence[Path]) -> int:
    return sum(f.stat().st_size for f in files if f.is_file())


def _human(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _dvc_outs(root: Path) -> dict[str, str | None]:
    """Every output DVC knows (stages' and ``.dvc`` files'), by its path relative to ``root``, with
    why DVC could not give it to a queued experiment (None: it can), read while the repo is open."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return {Path(out.fs_path).relative_to(root).as_posix(): _dvc_state(out) for out in repo.index.outs}


def _dvc_state(out: Any) -> str | None:
    """Why DVC cannot give a queued experiment an output (None: it can): a stage's output is made in
    the copy; a ``dvc add``ed path must have its data in the cache, unchanged since it was added."""
    if not out.stage.is_data_source:
        return None
    if not out.hash_info or not out.cache.exists(out.hash_info.value):
        return "its data is not in the DVC cache"
    if out.status():
        return "it changed since `dvc add` (the queue would use the old version)"
    return None


def plan(root: Path, params: Params, deps: Sequence[str], limit: int | None = None) -> Plan:
    """Check every input a queued experiment reads (``deps``: dvc.yaml's, relative to ``root``) and
    the paths ``params`` name; raises :class:`UserError` at the first one it would not find.
    ``limit``: bytes it may carry per path (default CARRY_LIMIT)."""
    limit = CARRY_LIMIT if limit is None else limit
    root = Path(root).resolve()
    outs = _dvc_outs(root)
    result = Plan()
    paths, hub_ids = param_paths(params)
    for key, repo_id in hub_ids.items():
        if params.generate.offline and not _in_hub_cache(repo_id):
            raise UserError(
                f"{repo_id} ({key}): neither a folder or file here nor a hub id in the local Hugging Face cache, "
                "and generate.offline is true; give the model's path, or download it once with generate.offline: false"
            )
    wanted = {dep: f"a dep of dvc.yaml ({dep})" for dep in deps} | {v: k for k, v in paths.items()}
    for raw, key in wanted.items():
        path = Path(raw).expanduser()
        if path.is_absolute() and not path.resolve().is_relative_to(root):
            continue  # outside the repository: the queued copy finds it where it is
        if not path.is_absolute() and not (root / path).resolve().is_relative_to(root):
            raise UserError(
                f"{raw} ({key}): a relative path outside the repository does not resolve from DVC's queued "
                f"copy; give it as an absolute path ({(root / path).resolve()})"
            )
        rel = (path.resolve() if path.is_absolute() else (root / path).resolve()).relative_to(root).as_posix()
        owner = next((p for p in outs if rel == p or rel.startswith(p + "/")), None)
        if owner is not None:
            if outs[owner]:
                raise UserError(f"{rel} ({key}): tracked by DVC, but {outs[owner]}; run `dvc add {owner}`")
            continue
        if any(rel == p or p.startswith(rel + "/") for p in outs):
            continue  # a folder holding stage outputs (the stages make them in the copy too)
        untracked = [root / f for f in _git(root, "ls-files", "-z", "--others", "--", rel)]
        if not (root / rel).exists():
            raise UserError(f"{rel} ({key}): does not exist")
        if not untracked:
            continue  # every file under it is tracked by git
        size = _size(untracked)
        if size > limit:
            raise UserError(
                f"{rel} ({key}): {len(untracked)} file(s), {_human(size)}, not tracked by git or DVC, so a queued "
                f"experiment would not find it, and it is too large to copy into each one; run `dvc add {rel}` "
                "(and git add the .dvc file), or move it outside the repository (a model: the Hugging Face "
                "cache, or an absolute path) and point the key there"
            )
        result.copy_paths.append(rel)
        result.notes.append(f"carried with --copy-paths: {rel} ({key}; {len(untracked)} file(s), {_human(size)})")
    return result


def external_deps(root: Path) -> list[str]:
    """Every dep in dvc.yaml that no stage outputs (code, data/user, ...), as DVC resolves them."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        outs = {Path(o.fs_path) for o in repo.index.outs}
        deps = set()
        for stage in repo.index.stages:
            for dep in stage.deps:
                if type(dep).__name__ != "Dependency":  # params and the like
                    continue
                p = Path(dep.fs_path)
                if not any(p == o or o in p.parents for o in outs):
                    deps.add(p.relative_to(Path(root).resolve()).as_posix())
        return sorted(deps)


def queue_argv(
    root: Path, params: Params, overrides_argv: Sequence[str], limit: int | None = None
) -> tuple[list[str], list[str]]:
    """``dvc exp run --queue`` with ``overrides_argv`` (``-S key=value`` words) and ``--copy-paths``
    for what :func:`plan` carries, and its notes; raises :class:`UserError` for what it refuses."""
    found = plan(root, params, external_deps(root), limit)
    argv = ["dvc", "exp", "run", "--queue"]
    for path in found.copy_paths:
        argv += ["--copy-paths", path]
    return argv + list(overrides_argv), found.notes


def sweep(value: str) -> list[str]:
    """A ``-S`` value's sweep (Hydra's ``a,b``: commas outside brackets and quotes), value by value."""
    out, depth, quote, word = [], 0, "", ""
    for c in value:
        if quote:
            quote = "" if c == quote else quote
        elif c in "\"'":
            quote = c
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
        elif c == "," and depth == 0:
            out.append(word)
            word = ""
            continue
        word += c
    return [*out, word]


def main(argv: Sequence[str] | None = None) -> None:
    import itertools

    import yaml

    from synthaug.app.experiments import Experiments, command_line, overrides_to_params

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-S", "--set-param", action="append", default=[], metavar="KEY=VALUE[,VALUE...]")
    ap.add_argument("--check", action="store_true", help="print the dvc command it would run, queue nothing")
    args = ap.parse_args(argv)
    ex = Experiments(Path.cwd())
    try:
        pairs = [s.split("=", 1) for s in args.set_param]
        if any(len(p) != 2 for p in pairs):
            raise UserError("-S: write key=value (a sweep: key=a,b)")
        carry: list[str] = []
        notes: list[str] = []
        for combo in itertools.product(*(sweep(v) for _, v in pairs)):  # every experiment of a sweep
            overrides = {k.lstrip("+"): yaml.safe_load(v) for (k, _), v in zip(pairs, combo)}
            found = plan(ex.root, overrides_to_params(ex.raw_params(), overrides), external_deps(ex.root))
            carry += [p for p in found.copy_paths if p not in carry]
            notes += [n for n in found.notes if n not in notes]
        queue = ["dvc", "exp", "run", "--queue", *(w for p in carry for w in ("--copy-paths", p))]
        queue += [w for s in args.set_param for w in ("-S", s)]
        if not args.check:
            print(ex.dvc(*queue[1:]).strip())
        print("\n".join([command_line(queue), *notes]))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
