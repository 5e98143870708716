"""The Experiments tab's work: params overrides validated as the pipeline validates params, the
``dvc exp run`` line that makes them (Hydra-quoted ``-S`` overrides), DVC's queue and experiment
table, and an experiment's curves read at its revision."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from synthaug.app.engine import Request, shown_at
from synthaug.dag import Dag
from synthaug.errors import UserError
from synthaug.metrics import regime_rows
from synthaug.params import Params, ParamsError, parse_params


def set_param(raw: dict, key: str, value: Any) -> None:
    """Set a dotted params key in a params mapping (``generate.steps``), creating no new sections."""
    node = raw
    *parents, last = key.split(".")
    for i, part in enumerate(parents):
        if not isinstance(node, dict) or part not in node:
            raise ParamsError(f"{'.'.join(parents[: i + 1])}: no such params section")
        node = node[part]
    if not isinstance(node, dict):
        raise ParamsError(f"{'.'.join(parents)}: not a section")
    node[last] = value


def overrides_to_params(base: dict, overrides: dict[str, Any]) -> Params:
    """params.yaml's mapping with ``overrides`` applied, validated as ``dvc exp run -S`` would be."""
    raw = json.loads(json.dumps(base))
    for key, value in overrides.items():
        set_param(raw, key, value)
    return parse_params(raw)


def hydra_value(value: Any) -> str:
    """A value as ``dvc exp run -S key=value`` reads it (Hydra's override grammar): a string that is not
    a plain word is quoted, so a comma in it is not a sweep."""
    if isinstance(value, str):
        if re.fullmatch(r"[A-Za-z_][\w./:+-]*", value) and value.lower() not in ("true", "false", "null", "none"):
            return value
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def has_key(raw: dict, key: str) -> bool:
    node: Any = raw
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def exp_run_argv(overrides: dict[str, Any], base: dict, queue: bool = False) -> list[str]:
    """``dvc exp run [--queue] -S key=value ...`` for params overrides (in the given order); a key
    params.yaml (``base``) does not have yet is added (Hydra's ``+key=value``)."""
    argv = ["dvc", "exp", "run", *(["--queue"] if queue else [])]
    for key, value in overrides.items():
        argv += ["-S", f"{'' if has_key(base, key) else '+'}{key}={hydra_value(value)}"]
    return argv


def request_overrides(req: Request, params: Params) -> dict[str, Any]:
    """The params that make ``req``'s images in the pipeline (txt2img, or img2img at its strength)."""
    out: dict[str, Any] = {
        "generate.model": req.model,
        "generate.steps": req.steps,
        "generate.guidance": req.guidance,
        "prompts.negative_prompt": req.negative_prompt,
    }
    if list(req.adapters) != list(params.generate.adapters):
        out["generate.adapters"] = list(req.adapters)
    if req.strength is None:
        schedulers = list(dict.fromkeys([*params.txt2img.schedulers, req.scheduler]))
        out["txt2img.schedulers"] = schedulers
        out |= {f"schedulers.{req.scheduler}.{k}": v for k, v in req.options.items()}
    else:
        out["img2img.strengths"] = list(dict.fromkeys([*params.img2img.strengths, req.strength]))
        out["img2img.scheduler"] = req.scheduler
        out |= {f"img2img.scheduler_options.{k}": v for k, v in req.options.items()}
    return out


def command_line(argv: Sequence[str]) -> str:
    return shlex.join(argv)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for k, v in tree.items():
        out |= flatten(v, f"{prefix}.{k}" if prefix else str(k))
    return out


def gains(metrics: dict) -> str:
    """Each variant's accuracy gain over the baseline (mean ± CI) from an experiment's summary."""
    for name, m in metrics.items():
        if name.endswith("summary.json"):
            data = m.get("data", {})
            rows = regime_rows(data) if "regimes" in data or "variants" in data else {}
            return ", ".join(
                f"{v}: {r['accuracy']['diff_vs_baseline']['mean']:+.3f} ± {r['accuracy']['diff_vs_baseline']['ci95']}"
                for v, r in rows.items()
                if "diff_vs_baseline" in r.get("accuracy", {})
            )
    return ""


class Experiments:
    """The Experiments tab: params overrides checked by synthaug.params, queued with ``dvc exp run
    --queue`` (never run in the workspace), DVC's queue and experiment table — in the DVC repo ``root``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.params_file = self.root / "params.yaml"

    def raw_params(self) -> dict:
        return yaml.safe_load(self.params_file.read_text())

    def overrides(self, text: str) -> dict[str, Any]:
        """``key: value`` lines (YAML values) → overrides, validated as the pipeline validates params."""
        out: dict[str, Any] = {}
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            key, sep, value = line.partition(":") if ":" in line else line.partition("=")
            if not sep or not key.strip():
                raise UserError(f"line {n}: write key: value (e.g. generate.steps: 30)")
            try:
                out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
            except yaml.YAMLError:
                raise UserError(f"line {n}: {value.strip()!r} is not a YAML value") from None
        overrides_to_params(self.raw_params(), out)  # raises ParamsError naming the key and the fix
        return out

    def check(self, text: str) -> str:
        """The Check button: the overrides' verdict as text, shown beside the field."""
        try:
            return f"ok: {len(self.overrides(text))} override(s), valid params"
        except UserError as exc:
            return f"error: {exc}"

    def dvc(self, *args: str, timeout: int = 600) -> str:
        """Run a DVC command in the repo; its output, or one error line. Output goes through files, not
        pipes: ``dvc queue start`` leaves daemon workers holding whatever it was given until they exit."""
        env = dict(os.environ, DVC_NO_ANALYTICS="1")
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            proc = subprocess.run(["dvc", *args], cwd=self.root, env=env, stdout=out, stderr=err, timeout=timeout)
            out.seek(0), err.seek(0)
            stdout, stderr = out.read(), err.read()
        if proc.returncode:
            raise UserError(f"dvc {' '.join(args)}: {' '.join((stderr or stdout).strip().splitlines()[-1:])}")
        return stdout

    def start(self, workers: int) -> str:
        return self.dvc("queue", "start", "-j", str(max(1, int(workers or 1))))

    def queue_argv(self, overrides: dict[str, Any]) -> tuple[list[str], list[str]]:
        """The ``dvc exp run --queue`` line for ``overrides`` and its notes, once every input the
        experiment reads is checked (synthaug.queueing): small untracked ones carried with
        ``--copy-paths``, the rest refused in one line."""
        from synthaug.queueing import queue_argv

        raw = self.raw_params()
        return queue_argv(self.root, overrides_to_params(raw, overrides), exp_run_argv(overrides, raw, queue=True)[4:])

    def queue(self, text: str) -> str:
        """Queue the overrides' experiment: DVC's answer, the command, and what was carried."""
        argv, notes = self.queue_argv(self.overrides(text))
        return "\n".join([self.dvc(*argv[1:]).strip(), command_line(argv), *notes])

    def table(self) -> list[list[Any]]:
        """DVC's own experiment table (``dvc exp show --json``): the workspace and each commit (HEAD
        first) with their metrics from the start, then every experiment — name, state, params that
        differ from the workspace, the summary's accuracy gain of each variant, and for a failed one
        the reason its log gives (not only in ``dvc queue logs``)."""
        rows = json.loads(self.dvc("exp", "show", "--json") or "[]")
        base = flatten(rows[0]["data"]["params"].get("params.yaml", {}).get("data", {})) if rows else {}
        states = self.queue_states()  # exp show leaves a finished experiment's state empty; the queue knows it
        table = []

        def line(name: str, data: dict, status: str) -> list[Any]:
            params = flatten(data.get("params", {}).get("params.yaml", {}).get("data", {}))
            changed = {k: v for k, v in params.items() if base.get(k) != v}
            return [name, status, json.dumps(changed), gains(data.get("metrics", {})), self.reason(name, status)]

        for row in rows:
            data = row.get("data", {})
            name = row.get("name") or ("workspace" if row.get("rev") == "workspace" else data.get("rev", "")[:7])
            table.append(line(name, data, data.get("status", "") or ("workspace" if name == "workspace" else "commit")))
            for exp in row.get("experiments") or []:
                for rev in exp.get("revs", []):
                    data = rev.get("data", {})
                    name = rev.get("name") or data.get("rev", "")[:7]
                    table.append(line(name, data, data.get("status") or states.get(name, "")))
        return table

    def queue_states(self) -> dict[str, str]:
        """Each queued experiment's state by name (``dvc queue status``: Queued, Running, Success, Failed)."""
        states = {}
        for row in self.dvc("queue", "status").splitlines()[1:]:
            words = row.split()
            if len(words) >= 4 and words[-1] in ("Queued", "Running", "Success", "Failed"):
                states[words[1]] = words[-1]
        return states

    def reason(self, name: str, status: str) -> str:
        """Why a failed experiment failed: the last error line of its queue log."""
        if status.lower() != "failed":
            return ""
        try:
            log = self.dvc("queue", "logs", name)
        except UserError as exc:
            return str(exc)
        lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
        # a stage's own one-line error (synthaug.cli.run prints "error: ..."), else DVC's last word
        own = [ln for ln in lines if ln.startswith("error: ")]
        return (own or lines or ["(empty log)"])[-1][:400]

    def read_at(self, name: str, path: Path, mode: str = "r") -> Any:
        """A file of the repo as it is at experiment or revision ``name`` (DVC's API: git-tracked files
        from git, DVC-tracked ones from the cache)."""
        import dvc.api

        try:
            return dvc.api.read(
                path.relative_to(self.root).as_posix(), repo=str(self.root), rev=name.strip(), mode=mode
            )
        except Exception as exc:  # DVC's own errors: no such revision, no such file there, not in the cache
            raise UserError(f"experiment {name!r}: cannot read {path.name} ({type(exc).__name__})") from None

    def compare(self, a: str, b: str, out: Path) -> tuple[list[list[Any]], list[list[Any]], list, list]:
        """Two experiments (or revisions) side by side: the params that differ, each variant's metrics
        in both (the report's formats), and a gallery of each one's txt2img images — the first of
        each class from its first scheduler — copied under ``out`` (empty where DVC's cache lacks them)."""
        from synthaug.layout import Source
        from synthaug.metrics import METRICS
        from synthaug.reporting import diff_text, mean_text

        params = {n: flatten(yaml.safe_load(self.read_at(n, self.params_file))) for n in (a, b)}
        changed = [
            [k, json.dumps(params[a].get(k)), json.dumps(params[b].get(k))]
            for k in sorted(params[a].keys() | params[b].keys())
            if params[a].get(k) != params[b].get(k)
        ]
        dag = Dag(self.root)
        summaries = {n: regime_rows(json.loads(self.read_at(n, dag.arg("summarize", "--out")))) for n in (a, b)}
        rows = []
        for variant in dict.fromkeys([*summaries[a], *summaries[b]]):
            for m in METRICS:
                cells = [summaries[n].get(variant, {}).get(m.name) for n in (a, b)]
                if any(cells):
                    rows.append(
                        [
                            variant,
                            m.label,
                            *(mean_text(c) for c in cells),
                            *(diff_text((c or {}).get("diff_vs_baseline")) for c in cells),
                        ]
                    )

        def gallery(name: str) -> list[tuple[str, str]]:
            first = yaml.safe_load(self.read_at(name, self.params_file))["txt2img"]["schedulers"][0]
            source = Source(dag.arg(f"txt2img@{first}", "--out"))
            seen, items = set(), []
            try:
                text = self.read_at(name, source.manifest)
                for r in (json.loads(line) for line in text.splitlines() if line.strip()):
                    if r["class"] not in seen:
                        seen.add(r["class"])
                        path = out / name.replace("/", "_") / Path(r["file"]).name
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_bytes(self.read_at(name, source.cls / r["file"], mode="rb"))
                        items.append((shown_at(path), f"{name}: {r['name']} ({first})"))
            except UserError:
                return []  # its images are not in this machine's DVC cache
            return items

        return changed, rows, gallery(a), gallery(b)

    def curves(self, name: str) -> tuple[Any, Any]:
        """An experiment's ResNet training curves and scheduler study, drawn as the report draws them,
        from the files at that experiment's commit (DVC's API); ``name``: an experiment name or any
        git revision."""
        import csv
        import io

        from synthaug.layout import regime
        from synthaug.reporting import study_figure, training_curves

        def read(path: Path) -> str:
            return self.read_at(name, path)

        params = yaml.safe_load(read(self.params_file))
        dag = Dag(self.root)
        curves = dag.arg("report", "--curves")
        # an experiment made before the trials section kept its seeds in the budget
        seeds = params["trials"]["resnet_seeds"] if "trials" in params else params["train_resnet"]["seeds"]
        shots = params.get("trials", {}).get("shots")  # an experiment made before regimes has none
        variants = [v for v, cfg in params["variants"].items() if not shots or shots[-1] in cfg.get("shots", shots)]
        fig = training_curves(variants, seeds, curves, read, regime(shots[-1]) if shots else None)
        fig.axes[0].set_title(f"{name}: ResNet training")
        study = study_figure(list(csv.DictReader(io.StringIO(read(dag.arg("summarize", "--study-plot"))))))
        study.suptitle(f"{name}: scheduler study")
        return fig, study
