"""The app's Gradio layout (:mod:`synthaug.app.handlers` holds the handlers): four tabs wired to :class:`App`.

Every handler turns a :class:`~synthaug.errors.UserError` into ``gr.Error``: the message shows in the
UI and the app keeps serving.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synthaug import registry
from synthaug.app.engine import AXES
from synthaug.errors import UserError
from synthaug.offline import harden

# The two classic comparisons: (mode, (X axis, values), (Y axis, values)).
PRESETS = {
    "DDIM vs PNDM over steps": ("txt2img", ("scheduler", "ddim, pndm"), ("steps", "10, 25, 50")),
    "strength 0.4 vs 0.8 over seeds": ("img2img", ("strength", "0.4, 0.8"), ("seed", "0, 1, 2")),
}

MODEL_HELP = (
    "builtin, a local diffusers folder, a cached hub id or a single .safetensors checkpoint "
    "(its architecture: generate.model_config)"
)
PNG_FIELDS = ("mode", "model", "prompt", "negative_prompt", "scheduler", "options", "steps", "guidance", "seed")
FORM = (
    "mode",
    "model",
    "label",
    "prompt",
    "negative_prompt",
    "scheduler",
    "options",
    "steps",
    "guidance",
    "seed",
    "random_seed",
    "batch",
    "upload",
    "real_image",
    "strength",
    "adapters",
)


def gradio_offline(folder: Path) -> None:
    """Before gradio is imported: no analytics or version check, its temp files in ``folder`` (an
    ignored folder of the repo, not the system temp dir or the home directory), hub offline."""
    harden()
    folder.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        GRADIO_ANALYTICS_ENABLED="False",
        GRADIO_TEMP_DIR=str(folder / "tmp"),
        GRADIO_SERVER_NAME=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        HF_HOME=str(folder / "hf"),
    )


def shown(fn: Callable) -> Callable:
    """A handler whose user errors show in the UI (``gr.Error``) instead of failing the event."""
    import gradio as gr

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    return wrapper


# Every pixel of a small image a crisp square wherever the browser scales it (the previews are already
# integer zooms; this keeps Gradio's own resizing from blurring them).
CSS = "#gallery img, #grid img, #gallery-a img, #gallery-b img { image-rendering: pixelated; }"


def build(app: Any) -> Any:
    import gradio as gr

    with gr.Blocks(title="synthaug", analytics_enabled=False) as demo:
        gr.Markdown("# synthaug — synthetic training images, measured")
        with gr.Tab("Sample"):
            form, fields = sample_tab(app)
        with gr.Tab("Compare"):
            compare_tab(app, form, fields)
        with gr.Tab("Experiments"):
            experiments_tab(app.experiments)
        with gr.Tab("Results"):
            results_tab(app)
    return demo


def sample_tab(app: Any) -> tuple[list, dict]:
    """The Sample tab; returns its form's components (in FORM's order) and the same by name."""
    import gradio as gr

    params = app.engine.params
    classes = app.engine.backend("builtin").classes if app.engine.builtin.is_dir() else []
    with gr.Row():
        mode = gr.Radio(["txt2img", "img2img"], value="txt2img", label="mode")
        model = gr.Textbox("builtin", label="model", info=MODEL_HELP)
    with gr.Row():
        label = gr.Dropdown(classes, value=classes[0] if classes else None, label="class (builtin model)")
        prompt = gr.Textbox(classes[0] if classes else "", label="prompt", elem_id="prompt")
        negative = gr.Textbox(params.prompts.negative_prompt, label="negative prompt")
    with gr.Row():
        scheduler = gr.Dropdown(list(registry.SCHEDULERS), value=params.txt2img.schedulers[0], label="scheduler")
        options = gr.Textbox(json.dumps(params.schedulers.get("ddim", {})), label="scheduler options (JSON)")
        steps = gr.Slider(1, 150, value=params.generate.steps, step=1, label="steps")
        guidance = gr.Slider(0, 20, value=params.generate.guidance, step=0.5, label="guidance")
    with gr.Row():
        seed = gr.Number(0, precision=0, label="seed", elem_id="seed")
        random_seed = gr.Checkbox(False, label="random seed")
        batch = gr.Slider(1, 8, value=1, step=1, label="batch size")
        adapters = adapters_box(params)
    with gr.Row():
        upload = gr.Image(type="filepath", label="img2img source (any size or mode)", image_mode=None)
        real_image = gr.Dropdown(list(app.real_images()), label="…or a real train image")
        strength = gr.Slider(0.01, 1.0, value=0.5, step=0.01, label="strength (img2img)")
    with gr.Row():
        generate = gr.Button("Generate", variant="primary", elem_id="generate")
        cancel = gr.Button("Cancel")
    record, make_record = record_row(app)
    gallery, parameters, command, png = made_outputs()
    form = [mode, model, label, prompt, negative, scheduler, options, steps, guidance, seed, random_seed, batch]
    form += [upload, real_image, strength, adapters]
    fields = dict(zip(FORM, form))

    @shown
    def on_generate(*args: Any, progress: Any = gr.Progress()) -> tuple:  # noqa: B008 (Gradio's idiom)
        return app.sample(dict(zip(FORM, args)), progress)

    @shown
    def on_record(record_id: str, scheduler_name: str, progress: Any = gr.Progress()) -> tuple:  # noqa: B008
        return app.pipeline(record_id, scheduler_name, progress)

    @shown
    def on_png(path: str | None) -> list:
        v = app.load_png(path)
        if v["not_applied"]:  # never dropped silently: a web UI's Clip skip, Hires upscale, ...
            gr.Warning(f"not applied (no such setting here): {v['not_applied']}")
        return [v[k] for k in PNG_FIELDS] + [v.get("strength", 0.5)]

    generate.click(on_generate, form, [gallery, parameters, command])
    make_record.click(on_record, [record, scheduler], [gallery, parameters, command])
    cancel.click(lambda: app.cancel.set(), None, None, queue=False)
    scheduler.change(lambda s: json.dumps(params.schedulers.get(s, {})), scheduler, options)
    label.change(lambda k: k, label, prompt)
    png.upload(on_png, png, [fields[k] for k in PNG_FIELDS] + [strength])
    return form, fields


def made_outputs() -> tuple[Any, Any, Any, Any]:
    """What the Sample tab shows of what it made: the gallery (whole images, never cropped; small ones
    arrive at an integer zoom, engine.shown_at), the chunk, the pipeline command, and a PNG drop."""
    import gradio as gr

    return (
        gr.Gallery(label="images", columns=4, height=320, object_fit="contain", elem_id="gallery"),
        gr.Textbox(label="parameters (the PNG's chunk)", lines=3, elem_id="parameters"),
        gr.Textbox(label="copy as command: the pipeline run that makes the same images", lines=2),
        gr.File(label="load parameters from a PNG", file_types=[".png"], type="filepath"),
    )


def adapters_box(params: Any) -> Any:
    """The Sample tab's LoRA and textual-inversion list, as generate.adapters writes it."""
    import gradio as gr

    return gr.Textbox(
        json.dumps(list(params.generate.adapters)),
        label="adapters (JSON, as generate.adapters)",
        info='LoRA and textual inversion files: [{"lora": "ink.safetensors", "scale": 0.8}, '
        '{"textual_inversion": "blot.safetensors", "token": "<blot>"}]',
    )


def record_row(app: Any) -> tuple[Any, Any]:
    """A prompt record of the pipeline, and the button that makes it exactly as txt2img does."""
    import gradio as gr

    with gr.Accordion("…or make one of the pipeline's prompt records exactly as txt2img does", open=False):
        with gr.Row():
            ids = [r["id"] for r in app.prompt_records()]
            record = gr.Dropdown(ids, value=ids[0] if ids else None, label="prompt record")
            make_record = gr.Button("Make it as the pipeline does (byte for byte)")
    return record, make_record


def compare_tab(app: Any, form: list, fields: dict) -> None:
    import gradio as gr

    gr.Markdown("An X/Y grid over the Sample tab's settings: the same seed in every cell.")
    with gr.Row():
        x_axis = gr.Dropdown(list(AXES), value="scheduler", label="X")
        x_values = gr.Textbox("ddim, pndm", label="X values")
        y_axis = gr.Dropdown(list(AXES), value="steps", label="Y")
        y_values = gr.Textbox("10, 25, 50", label="Y values")
    with gr.Row():
        preset_buttons = [gr.Button(name) for name in PRESETS]
        run_grid = gr.Button("Make grid", variant="primary")
    grid = gr.Image(label="grid", type="filepath", elem_id="grid")
    seconds = gr.Dataframe(label="seconds per image")

    @shown
    def on_grid(*args: Any, progress: Any = gr.Progress()) -> tuple:  # noqa: B008 (Gradio's idiom)
        *form_values, xa, xv, ya, yv = args
        return app.compare(dict(zip(FORM, form_values)), (xa, xv), (ya, yv), progress)

    run_grid.click(on_grid, [*form, x_axis, x_values, y_axis, y_values], [grid, seconds])
    for button, (m, (xa, xv), (ya, yv)) in zip(preset_buttons, PRESETS.values()):
        preset = (m, xa, xv, ya, yv)
        button.click(lambda preset=preset: preset, None, [fields["mode"], x_axis, x_values, y_axis, y_values])


def experiments_tab(ex: Any) -> None:
    import gradio as gr

    gr.Markdown(
        "Params overrides, one `key: value` per line, checked as the pipeline checks params.yaml; "
        "**Queue** adds a `dvc exp run --queue` experiment (never run in your workspace)."
    )
    overrides = gr.Textbox("generate.steps: 30\n", lines=5, label="overrides")
    with gr.Row():
        validate = gr.Button("Check")
        queue = gr.Button("Queue", variant="primary")
        jobs = gr.Number(1, precision=0, label="workers")
        start = gr.Button("Start workers")
        stop = gr.Button("Stop workers")
        refresh = gr.Button("Refresh")
    message = gr.Textbox(label="result", lines=3)
    status = gr.Textbox(label="queue (dvc queue status)", lines=6)

    def table_now() -> list[list[Any]]:  # on every page load: the workspace and HEAD from the start
        try:
            return ex.table()
        except UserError as exc:
            return [["(no table)", str(exc), "", "", ""]]

    exps = gr.Dataframe(
        table_now, headers=["experiment", "status", "params changed", "accuracy gain vs baseline", "why it failed"]
    )
    with gr.Row():
        name = gr.Textbox(label="experiment name")
        show_log = gr.Button("Show log")
        show_plots = gr.Button("Show its training curves and study")
    log = gr.Textbox(label="log (dvc queue logs)", lines=10)
    with gr.Row():
        training_plot, study_plot = gr.Plot(label="training curves"), gr.Plot(label="scheduler study")
    gr.Markdown("**Two side by side**: experiment names or any git revisions (HEAD, a branch, a tag).")
    with gr.Row():
        left, right = gr.Textbox("HEAD", label="experiment A"), gr.Textbox("", label="experiment B")
        compare = gr.Button("Compare")
    differ = gr.Dataframe(headers=["param", "A", "B"], label="params that differ")
    metrics = gr.Dataframe(
        headers=["variant", "metric", "A", "B", "A: Δ vs baseline", "B: Δ vs baseline"], label="metrics"
    )
    with gr.Row():
        left_gallery = gr.Gallery(label="A: txt2img", columns=5, object_fit="contain", elem_id="gallery-a")
        right_gallery = gr.Gallery(label="B: txt2img", columns=5, object_fit="contain", elem_id="gallery-b")
    out = ex.root / ".gradio" / "compare"
    compare.click(
        shown(lambda a, b: ex.compare(a, b, out)), [left, right], [differ, metrics, left_gallery, right_gallery]
    )
    validate.click(ex.check, overrides, message)
    queue.click(shown(ex.queue), overrides, message)
    start.click(shown(ex.start), jobs, message)
    stop.click(shown(lambda: ex.dvc("queue", "stop")), None, message)
    refresh.click(shown(lambda: (ex.dvc("queue", "status"), ex.table())), None, [status, exps])
    show_log.click(shown(lambda n: ex.dvc("queue", "logs", n.strip())), name, log)
    show_plots.click(shown(ex.curves), name, [training_plot, study_plot])


def results_tab(app: Any) -> None:
    import gradio as gr

    reload = gr.Button("Reload")
    summary = gr.Dataframe(
        headers=["variant", "metric", "mean ± 95% CI", "Δ vs baseline ± 95% CI, Holm-adjusted p"],
        value=app.summary_rows(),
    )
    report = gr.HTML(app.report_html())
    reload.click(lambda: (app.summary_rows(), app.report_html()), None, [summary, report])
