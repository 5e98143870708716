"""The app's event handlers: :class:`App` turns each tab's form into a call on the engine
(:mod:`synthaug.app.engine`) or the experiments panel (:mod:`synthaug.app.experiments`) and its
result into what Gradio shows. Plain functions of their inputs, tested directly; the layout that
wires them is :mod:`synthaug.app.tabs`."""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path
from typing import Any

from synthaug.app.engine import Cancelled, Engine, Request, open_upload, shown_at
from synthaug.app.experiments import Experiments, command_line, exp_run_argv, request_overrides
from synthaug.dag import ROOT, Dag
from synthaug.errors import UserError
from synthaug.files import read_json, read_jsonl
from synthaug.infotext import parse
from synthaug.layout import Real
from synthaug.params import load_params
from synthaug.prompting import make_records
from synthaug.registry import effective_steps


class App:
    """What the handlers share: the engine, the repo's DVC view and the cancel flag."""

    def __init__(self, root: Path = ROOT, out: Path | None = None):
        self.root = Path(root)
        self.dag = Dag(self.root)
        params = load_params(self.root / "params.yaml")
        builtin = self.dag.arg("pretrain", "--out")
        out = out or self.root / ".gradio" / "outputs"
        self.engine = Engine(params, builtin, out, builtin.relative_to(self.root).as_posix())
        self.cancel = threading.Event()
        self.experiments = Experiments(self.root)

    # --- Sample -----------------------------------------------------------------------------------
    def request(self, form: dict[str, Any]) -> Request:
        """A Request from the form's values (``options``: the scheduler's options as JSON)."""
        try:
            options = json.loads(form.get("options") or "{}")
        except json.JSONDecodeError as exc:
            raise UserError(f'scheduler options: not JSON ({exc.msg}); e.g. {{"eta": 0.0}}') from None
        try:
            adapters = json.loads(form.get("adapters") or "[]")
        except json.JSONDecodeError as exc:
            raise UserError(
                f'adapters: not JSON ({exc.msg}); e.g. [{{"lora": "ink.safetensors", "scale": 0.8}}]'
            ) from None
        if not isinstance(adapters, list) or not all(isinstance(a, dict) for a in adapters):
            raise UserError(
                'adapters: a JSON list of {"lora": FILE, "scale": S} or {"textual_inversion": FILE, "token": T}'
            )
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
            adapters=tuple(adapters),
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
        made = self.engine.generate(req, self.source_image(form), self.stepper(progress, "step"))
        command = command_line(exp_run_argv(request_overrides(req, self.engine.params), self.experiments.raw_params()))
        denoised = ""
        if req.strength is not None:  # SDEdit skips the first (1 - strength) of the schedule
            denoised = f", {effective_steps(req.steps, req.strength)} of {req.steps} steps denoised"
        gallery = [(shown_at(m.path), f"seed {req.seed + i}{denoised}, {m.seconds:.2f} s") for i, m in enumerate(made)]
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
        made = self.dag.arg("prompts", "--out")
        if made.is_file():
            return read_jsonl(made)
        p = self.engine.params
        return make_records(self.engine.backend(p.generate.model, p.generate.adapters).classes, p.prompts, p.seed)

    def pipeline(self, record_id: str, scheduler: str, progress: Any = None) -> tuple[list, str, str]:
        """One prompt record made exactly as txt2img@<scheduler> makes it (the stage's PNG, byte for byte)."""
        records = self.prompt_records()
        ids = [r.get("id") for r in records]
        if record_id not in ids:
            raise UserError(f"record: no prompt record {record_id!r} (e.g. {ids[0]})")

        made = self.engine.pipeline_image(records, ids.index(record_id), scheduler, self.stepper(progress, "step"))
        params = self.engine.params
        if scheduler in params.txt2img.schedulers:
            command = f"dvc repro txt2img@{scheduler}"
        else:
            extended = {"txt2img.schedulers": [*params.txt2img.schedulers, scheduler]}
            command = command_line(exp_run_argv(extended, self.experiments.raw_params()))
        return [(shown_at(made.path), f"{record_id}, {made.seconds:.2f} s")], made.parameters, command

    def load_png(self, path: str | None) -> dict[str, Any]:
        """A PNG's parameters chunk back into form values (what "load parameters" fills in);
        ``not_applied``: the settings the form has no field for, for the user to read."""
        if not path:
            raise UserError("load parameters: drop a PNG made here or by txt2img")
        img = open_upload(Path(path))
        text = img.info.get("parameters")
        if not text:
            raise UserError(f"{Path(path).name}: no 'parameters' chunk (not made by synthaug or a web UI)")
        values = parse(text)
        # params' options for the scheduler, then what the chunk says (its Schedule type, Eta) over them
        values["options"] = json.dumps(self.engine.params.schedulers.get(values["scheduler"], {}) | values["options"])
        values["model"] = "builtin" if values["model"] == self.engine.builtin_label else values["model"]
        values["mode"] = "img2img" if "strength" in values else "txt2img"
        values["not_applied"] = ", ".join(f"{k}: {v}" for k, v in values["not_applied"].items())
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
        path, seconds = self.engine.grid(req, axes[0], axes[1], self.source_image(form), self.stepper(progress, "grid"))
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
        """The summary table as the report writes it: mean ± 95% CI, and the paired difference to the
        baseline with its interval and Holm-adjusted p (synthaug.reporting's formats)."""
        from synthaug.metrics import METRICS, regime_rows
        from synthaug.reporting import diff_text, mean_text

        summary = self.dag.arg("summarize", "--out")
        if not summary.is_file():
            return []
        labels = {m.name: m.label for m in METRICS}
        data, out = read_json(summary), []
        for name in data.get("regimes", {None: None}):
            for variant, row in regime_rows(data, name).items():
                shown = f"{variant} @ {name}" if name else variant
                for metric, m in ((k, v) for k, v in row.items() if isinstance(v, dict) and "mean" in v):
                    out.append([shown, labels.get(metric, metric), mean_text(m), diff_text(m.get("diff_vs_baseline"))])
        return out


def parse_values(axis: str, text: str) -> list[Any]:
    """An axis's comma-separated values, typed as the axis needs them."""
    kind = {"scheduler": str, "steps": int, "seed": int, "guidance": float, "strength": float}[axis]
    try:
        return [kind(v.strip()) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"axis {axis}: {text!r} is not a comma-separated list of {kind.__name__} values") from None
