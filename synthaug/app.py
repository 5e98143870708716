"""The app: enter parameters, see results — a local Gradio UI over the pipeline (``make app``).

    python -m synthaug.app [--host 127.0.0.1] [--port 7860]

Tabs: **Sample** (txt2img / img2img on any backend the pipeline loads), **Compare** (an X/Y grid),
**Experiments** (params validated by synthaug.params, queued with ``dvc exp run --queue``, DVC's own
experiment table), **Results** (the report and the summary). The event handlers are plain functions
of their inputs (tested directly); the work is :mod:`synthaug.studio`'s. Offline and private:
Gradio's analytics off, loopback by default, its temp files in the repo's ignored ``.gradio/``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from synthaug.dag import ROOT, Dag
from synthaug.errors import UserError
from synthaug.files import read_json, read_jsonl
from synthaug.layout import Real
from synthaug.parameters import parse
from synthaug.params import load_params
from synthaug.studio import (
    Cancelled,
    Request,
    Studio,
    command_line,
    exp_run_argv,
    open_upload,
    overrides_to_params,
    request_overrides,
)


class App:
    """What the handlers share: the engine, the repo's DVC view and the cancel flag."""

    def __init__(self, root: Path = ROOT, out: Path | None = None):
        self.root = Path(root)
        self.dag = Dag(self.root)
        params = load_params(self.root / "params.yaml")
        builtin = self.dag.arg("pretrain", "--out")
        out = out or self.root / ".gradio" / "outputs"
        self.studio = Studio(params, builtin, out, builtin.relative_to(self.root).as_posix())
        self.cancel = threading.Event()
        self.experiments = Experiments(self.root)

    # --- Sample -----------------------------------------------------------------------------------
    def request(self, form: dict[str, Any]) -> Request:
        """A Request from the form's values (``options``: the scheduler's options as JSON)."""
        try:
            options = json.loads(form.get("options") or "{}")
        except json.JSONDecodeError as exc:
            raise UserError(f'scheduler options: not JSON ({exc.msg}); e.g. {{"eta": 0.0}}') from None
        seed = random.randrange(2**31) if form.get("random_seed") else int(form.get("seed") or 0)
        return Request(
            model=(form.get("model") or "builtin").strip(),
            label=form.get("label") or "",
            prompt=form.get("prompt") or "",
            negative_prompt=form.get("negative_prompt") or "",
            scheduler=form["scheduler"],
            options=options,
            steps=int(form["steps"]),
            guidance=float(form["guidance"]),
            seed=seed,
            batch=int(form.get("batch") or 1),
            strength=float(form["strength"]) if form.get("mode") == "img2img" else None,
        )

    def source_image(self, form: dict[str, Any]) -> Any:
        if form.get("mode") != "img2img":
            return None
        upload = form.get("upload") or self.real_images().get(form.get("real_image") or "")
        if not upload:
            raise UserError("img2img: upload an image or pick a real one")
        return open_upload(Path(upload))

    def real_images(self, limit: int = 200) -> dict[str, str]:
        """Real train images to start img2img from (name → path), if prepare has run."""
        real = Real(self.dag.arg("prepare", "--out"))
        files = sorted(real.cls("train").rglob("*.png"))[:limit] if real.cls("train").is_dir() else []
        return {f"{f.parent.name}/{f.name}": str(f) for f in files}

    def sample(self, form: dict[str, Any], progress: Any = None) -> tuple[list[tuple[str, str]], str, str]:
        """Generate: (gallery of (PNG, seed caption), the first image's parameters, the pipeline command)."""
        req = self.request(form)
        req.check()  # the form's values first, then the upload
        made = self.studio.generate(req, self.source_image(form), self.stepper(progress, "step"))
        command = command_line(exp_run_argv(request_overrides(req, self.studio.params), self.experiments.raw_params()))
        gallery = [(str(m.path), f"seed {req.seed + i}, {m.seconds:.2f} s") for i, m in enumerate(made)]
        return gallery, made[0].parameters, command

    def stepper(self, progress: Any, desc: str) -> Any:
        """The per-step callback: a Gradio progress bar, and the Cancel button's stop (checked every step)."""
        self.cancel.clear()

        def on_step(done: int, total: int) -> None:
            if self.cancel.is_set():
                raise Cancelled("cancelled: sampling stopped after the current step")
            if progress is not None:
                progress((done, total), desc=f"{desc} {done} of {total}")

        return on_step

    def prompt_records(self) -> list[dict]:
        """The prompts stage's records (its file when it has run, else made from params as it makes them)."""
        from stages.prompts import make_records

        made = self.dag.arg("prompts", "--out")
        if made.is_file():
            return read_jsonl(made)
        p = self.studio.params
        return make_records(self.studio.backend(p.generate.model).classes, p.prompts, p.seed)

    def pipeline(self, record_id: str, scheduler: str, progress: Any = None) -> tuple[list, str, str]:
        """One prompt record made exactly as txt2img@<scheduler> makes it (the stage's PNG, byte for byte)."""
        records = self.prompt_records()
        ids = [r.get("id") for r in records]
        if record_id not in ids:
            raise UserError(f"record: no prompt record {record_id!r} (e.g. {ids[0]})")

        made = self.studio.pipeline_image(records, ids.index(record_id), scheduler, self.stepper(progress, "step"))
        params = self.studio.params
        if scheduler in params.txt2img.schedulers:
            command = f"dvc repro txt2img@{scheduler}"
        else:
            extended = {"txt2img.schedulers": [*params.txt2img.schedulers, scheduler]}
            command = command_line(exp_run_argv(extended, self.experiments.raw_params()))
        return [(str(made.path), f"{record_id}, {made.seconds:.2f} s")], made.parameters, command

    def load_png(self, path: str | None) -> dict[str, Any]:
        """A PNG's parameters chunk back into form values (what "load parameters" fills in)."""
        if not path:
            raise UserError("load parameters: drop a PNG made here or by txt2img")
        img = open_upload(Path(path))
        text = img.info.get("parameters")
        if not text:
            raise UserError(f"{Path(path).name}: no 'parameters' chunk (not made by synthaug or a web UI)")
        values = parse(text)
        values["options"] = json.dumps(self.studio.params.schedulers.get(values["scheduler"], {}))
        values["model"] = "builtin" if values["model"] == self.studio.builtin_label else values["model"]
        values["mode"] = "img2img" if "strength" in values else "txt2img"
        return values

    # --- Compare ----------------------------------------------------------------------------------
    def compare(
        self, form: dict[str, Any], x: tuple[str, str], y: tuple[str, str], progress: Any = None
    ) -> tuple[str, dict[str, list]]:
        """The X/Y grid image and a table of seconds per image (rows: y values, columns: x values)."""
        req = self.request(form)
        axes = [(name, parse_values(name, text)) for name, text in (x, y)]
        if axes[0][0] == axes[1][0]:
            raise UserError(f"axes: X and Y are both {axes[0][0]}; choose two different ones")
        if "strength" in (x[0], y[0]) and req.strength is None:
            raise UserError("axis strength: switch the mode to img2img (strength is img2img's)")
        path, seconds = self.studio.grid(req, axes[0], axes[1], self.source_image(form), self.stepper(progress, "grid"))
        rows = [[f"{y[0]} {v}", *row] for v, row in zip(axes[1][1], seconds)]
        return str(path), {"headers": ["s / image", *(f"{x[0]} {v}" for v in axes[0][1])], "data": rows}

    # --- Results ----------------------------------------------------------------------------------
    def report_html(self) -> str:
        page = self.dag.arg("report", "--out")
        if not page.is_file():
            return "<p>No report yet: run <code>make repro</code> (or <code>dvc repro</code>).</p>"
        doc = page.read_text().replace("&", "&amp;").replace('"', "&quot;")
        return f'<iframe title="report" srcdoc="{doc}" style="width:100%;height:80vh;border:0"></iframe>'

    def summary_rows(self) -> list[list[Any]]:
        summary = self.dag.arg("summarize", "--out")
        if not summary.is_file():
            return []
        out = []
        for variant, row in read_json(summary)["variants"].items():
            for metric, m in ((k, v) for k, v in row.items() if isinstance(v, dict) and "mean" in v):
                d = m.get("diff_vs_baseline", {})
                out.append([variant, metric, m["mean"], m["ci95"], d.get("mean"), d.get("ci95"), d.get("p_holm")])
        return out


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

    def queue(self, text: str) -> str:
        argv = exp_run_argv(self.overrides(text), self.raw_params(), queue=True)
        return self.dvc(*argv[1:]) + "\n" + command_line(argv)

    def table(self) -> list[list[Any]]:
        """DVC's own experiment table (``dvc exp show --json``): name, params that differ from the
        workspace, the summary's accuracy gain of each variant, and the experiment's state."""
        rows = json.loads(self.dvc("exp", "show", "--json") or "[]")
        base = flatten(rows[0]["data"]["params"].get("params.yaml", {}).get("data", {})) if rows else {}
        table = []
        for row in rows:
            for exp in row.get("experiments") or []:
                for rev in exp.get("revs", []):
                    data = rev.get("data", {})
                    params = flatten(data.get("params", {}).get("params.yaml", {}).get("data", {}))
                    changed = {k: v for k, v in params.items() if base.get(k) != v}
                    table.append(
                        [
                            rev.get("name") or data.get("rev", "")[:7],
                            data.get("status", rev.get("status", "")),
                            json.dumps(changed),
                            gains(data.get("metrics", {})),
                        ]
                    )
        return table

    def curves(self, name: str) -> tuple[Any, Any]:
        """An experiment's ResNet training curves and scheduler study, drawn as the report draws them,
        from the files at that experiment's commit (DVC's API); ``name``: an experiment name or any
        git revision."""
        import csv
        import io

        import dvc.api

        from synthaug.reporting import study_figure, training_curves

        def read(path: Path) -> str:
            try:
                return dvc.api.read(path.relative_to(self.root).as_posix(), repo=str(self.root), rev=name.strip())
            except Exception as exc:  # DVC's own errors: no such revision, no such file there
                raise UserError(f"experiment {name!r}: cannot read {path.name} ({type(exc).__name__})") from None

        params = yaml.safe_load(read(self.params_file))
        dag = Dag(self.root)
        curves = dag.arg("report", "--curves")
        fig = training_curves(list(params["variants"]), params["train_resnet"]["seeds"], curves, read)
        fig.axes[0].set_title(f"{name}: ResNet training")
        study = study_figure(list(csv.DictReader(io.StringIO(read(dag.arg("summarize", "--study-plot"))))))
        study.suptitle(f"{name}: scheduler study")
        return fig, study


def parse_values(axis: str, text: str) -> list[Any]:
    """An axis's comma-separated values, typed as the axis needs them."""
    kind = {"scheduler": str, "steps": int, "seed": int, "guidance": float, "strength": float}[axis]
    try:
        return [kind(v.strip()) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"axis {axis}: {text!r} is not a comma-separated list of {kind.__name__} values") from None


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
            rows = m.get("data", {}).get("variants", {})
            return ", ".join(
                f"{v}: {r['accuracy']['diff_vs_baseline']['mean']:+.3f} ± {r['accuracy']['diff_vs_baseline']['ci95']}"
                for v, r in rows.items()
                if "diff_vs_baseline" in r.get("accuracy", {})
            )
    return ""


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    ap.add_argument("--port", type=int, default=7860)
    args = ap.parse_args(argv)
    from synthaug.ui import build, gradio_offline

    gradio_offline(ROOT / ".gradio")
    app = App()
    demo = build(app)
    demo.queue(default_concurrency_limit=1).launch(
        server_name=args.host,
        server_port=args.port,
        show_error=True,
        ssr_mode=False,
        mcp_server=False,
        pwa=False,
        footer_links=[],
        allowed_paths=[str(app.studio.out)],
    )


if __name__ == "__main__":
    main()
