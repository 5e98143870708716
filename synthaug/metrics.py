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
    headline: bool = False  # the verdict's: its comparisons form one Holm family over every regime
    fmt: str = "{:.3f}"


METRICS = (
    Metric("accuracy", "resnet", "ResNet accuracy", headline=True),
    Metric("macro_f1", "resnet", "ResNet macro-F1"),
    Metric("mAP50", "yolo", "YOLO mAP50"),
    Metric("mAP50-95", "yolo", "YOLO mAP50-95", headline=True),
)
METRIC_BY_NAME = {m.name: m for m in METRICS}


def of_model(model: str) -> tuple[str, ...]:
    """The names of the metrics that score ``model``."""
    return tuple(m.name for m in METRICS if m.model == model)


def regime_rows(summary: dict, regime: str | None = None) -> dict[str, dict]:
    """One regime's rows (variant → metric → row; the headline regime by default). A summary from
    before regimes (a revision older than ``trials.shots``) has one, under ``variants``."""
    if "regimes" not in summary:
        return summary["variants"]
    return summary["regimes"][regime or summary["headline"]]


def regime_shots(regime: str) -> int:
    return int(regime.removesuffix("shot"))
