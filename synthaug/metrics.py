"""The one list of what the study measures: each headline metric's name (its key in
metrics/eval/<variant>.json and metrics/summary.json), the model it scores, how the report names
and formats it. evaluate writes them, summarize compares them, both renderings of the report show
them; adding a metric here adds it everywhere."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    name: str
    model: str  # "resnet" or "yolo": the run folder and the seeds it is read from
    label: str
    fmt: str = "{:.3f}"


METRICS = (
    Metric("accuracy", "resnet", "ResNet accuracy"),
    Metric("macro_f1", "resnet", "ResNet macro-F1"),
    Metric("mAP50", "yolo", "YOLO mAP50"),
    Metric("mAP50-95", "yolo", "YOLO mAP50-95"),
)
MODELS = ("resnet", "yolo")


def of_model(model: str) -> tuple[str, ...]:
    """The names of the metrics that score ``model``."""
    return tuple(m.name for m in METRICS if m.model == model)
