"""YOLO detectors: training with an exact, counted optimiser-step budget (train_yolo and
bench/yolo_budget.py); trained detectors loaded from ``model.safetensors`` (never from pickled
``.pt`` checkpoints) into the architecture of their model yaml; validation and prediction without
files written anywhere but a temporary folder (evaluate, survival).

Ultralytics' defaults that would silently change a comparison, and what :func:`train_detector`
does instead (read in ``ultralytics/engine/trainer.py``, 8.4):

- ``nbs: 64`` accumulates ``round(nbs / batch)`` batches per optimiser step (8 at batch 8) and
  scales weight decay by the same factor: ``nbs`` is set to ``batch``, so every batch is a step.
- ``close_mosaic`` and ``warmup_epochs`` count epochs: they are given here in epochs over the real
  canvases and scaled with the epochs, so they cover the same optimiser steps for every variant.
- the weights kept after ``train()`` are ``best.pt`` (best on val); with ``val: False`` and the
  EMA weights taken at the end of the last epoch, every variant is the final model of its run.
- ``fliplr: 0.5`` mirrors images (a mirrored digit keeps its label): it is a param.
"""

from __future__ import annotations

import fcntl
import math
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from synthaug.cli import pin_threads
from synthaug.errors import ModelError
from synthaug.layout import Run
from synthaug.offline import ultralytics_offline
from synthaug.params import YoloBudgetParams


@dataclass(frozen=True)
class DetectorBudget(YoloBudgetParams):
    """What one detector run is given: a params section's budget (epochs, ``close_mosaic`` and
    ``warmup_epochs`` over the real train canvases) plus the model, device and torch threads."""

    model: str
    device: str
    threads: int

    @classmethod
    def of(cls, cfg: YoloBudgetParams, model: str, device: str, threads: int) -> DetectorBudget:
        """The budget a params section (train_yolo or pretrain_yolo) gives ``model``."""
        return cls(
            model=model,
            device=device,
            threads=threads,
            **{f.name: getattr(cfg, f.name) for f in fields(YoloBudgetParams)},
        )


def same_steps_epochs(epochs: float, n_real: int, n_train: int, batch: int) -> float:
    """Epochs over ``n_train`` canvases with as many batches as ``epochs`` over ``n_real``."""
    return epochs * math.ceil(n_real / batch) / max(1, math.ceil(n_train / batch))


def transfer(net: Any, state: dict) -> int:
    """Copy every tensor of ``state`` whose name and shape match into ``net`` in place (so the
    optimiser's and EMA's references stay valid); return how many were copied."""
    import torch

    own = net.state_dict()
    copied = 0
    with torch.no_grad():
        for k, v in state.items():
            if k in own and own[k].shape == v.shape:
                own[k].copy_(v)
                copied += 1
    return copied


def callbacks(init: Path | None, model_yaml: str, close: int, counts: dict, state: dict) -> dict[str, Any]:
    """Ultralytics callbacks by event: start from ``init``'s matching tensors, count every real
    optimiser step (and those without mosaic) into ``counts``, keep the final EMA weights in ``state``."""
    import torch
    from safetensors.torch import load_file

    try:
        start = load_file(init) if init is not None else {}  # a bad file fails before any training
    except (OSError, ValueError) as exc:
        raise ModelError(f"{init}: cannot read ({exc}); run `dvc repro pretrain_yolo`") from None

    def initialise(trainer: Any) -> None:  # after the model, optimiser and EMA exist
        counts["initialised_tensors"] = transfer(trainer.model, start)
        if counts["initialised_tensors"] == 0:
            raise ModelError(f"{init}: no tensor fits {model_yaml}; was it pretrained with another model yaml?")
        if trainer.ema:
            transfer(trainer.ema.ema, start)

    def count_steps(trainer: Any) -> None:
        def hook(*_: Any) -> None:  # fires on every real optimiser.step(), whatever triggers it
            counts["optimizer_steps"] += 1
            # Ultralytics' own rule (trainer._do_train) for the epochs that run without mosaic
            counts["steps_without_mosaic"] += bool(close) and trainer.epoch >= trainer.epochs - close

        trainer.optimizer.register_step_post_hook(hook)

    def keep_final(trainer: Any) -> None:
        net = trainer.ema.ema if trainer.ema else trainer.model
        state.update(
            {k: v.detach().float().contiguous() for k, v in net.state_dict().items() if isinstance(v, torch.Tensor)}
        )

    events = {"on_train_start": count_steps, "on_train_end": keep_final}
    return events | ({"on_pretrain_routine_end": initialise} if init is not None else {})


def train_args(
    data_yaml: Path,
    out: Path,
    budget: DetectorBudget,
    seed: int,
    epochs: int,
    close: int,
    warmup: float,
    single_cls: bool,
) -> dict[str, Any]:
    """``YOLO.train``'s arguments: the budget made explicit (``nbs`` = batch: no hidden gradient
    accumulation), deterministic, no validation or plots during training, the run folder ``out``."""
    cpu = budget.device == "cpu"
    return {
        "data": str(data_yaml.resolve()),
        "epochs": epochs,
        "close_mosaic": close,
        "warmup_epochs": warmup,
        "batch": budget.batch,
        "nbs": budget.batch,
        "imgsz": budget.imgsz,
        "optimizer": budget.optimizer,
        "lr0": budget.lr0,
        "mosaic": budget.mosaic,
        "fliplr": budget.fliplr,
        "single_cls": single_cls,
        "seed": seed,
        "deterministic": True,
        "device": budget.device,
        "workers": 0 if cpu else 4,
        "amp": not cpu,
        "val": False,
        "plots": False,
        "project": str(out.resolve().parent),
        "name": out.name,
        "exist_ok": True,
        "verbose": False,
    }


def train_detector(
    data_yaml: Path,
    out: Path,
    budget: DetectorBudget,
    seed: int,
    n_real: int,
    n_train: int,
    init: Path | None = None,
    single_cls: bool = False,
) -> dict:
    """Train ``budget.model`` (built from its yaml) on ``data_yaml`` into ``out`` (an existing folder).

    ``init``: a ``model.safetensors`` whose matching tensors start the run (pretrain_yolo's
    class-agnostic detector: everything but the class head). ``out`` receives Ultralytics' run
    files and ``model.safetensors`` (the final EMA weights, a plain state dict). Returns what
    really happened: epochs, optimiser steps (counted by a hook on the optimiser), steps without
    mosaic, images seen, tensors initialised, seconds.
    """
    ultralytics_offline()
    import ultralytics.utils.torch_utils as tu
    from safetensors.torch import save_file
    from ultralytics import YOLO

    pin_threads(budget.threads)
    tu.NUM_THREADS = budget.threads  # ultralytics would leave a core idle and vary with the machine
    epochs = max(1, round(same_steps_epochs(budget.epochs, n_real, n_train, budget.batch)))
    close = round(same_steps_epochs(budget.close_mosaic, n_real, n_train, budget.batch))
    warmup = same_steps_epochs(budget.warmup_epochs, n_real, n_train, budget.batch)
    counts = {"optimizer_steps": 0, "steps_without_mosaic": 0, "initialised_tensors": 0}
    state: dict[str, Any] = {}
    model = YOLO(budget.model)
    for event, callback in callbacks(init, budget.model, close, counts, state).items():
        model.add_callback(event, callback)
    with open(data_yaml, "rb") as dataset:
        # Ultralytics writes labels/<split>.cache beside a dataset on its first read, unlinking the old one
        # first: two runs of one dataset at once (train_yolo's workers) raced there, and one died of a
        # FileNotFoundError. One run at a time builds its dataloaders, so the second reads the first's cache.
        model.add_callback("on_pretrain_routine_start", lambda _: fcntl.flock(dataset, fcntl.LOCK_EX))
        model.add_callback("on_pretrain_routine_end", lambda _: fcntl.flock(dataset, fcntl.LOCK_UN))
        t0 = time.perf_counter()
        model.train(**train_args(data_yaml, out, budget, seed, epochs, close, warmup, single_cls))
        seconds = time.perf_counter() - t0
    if not state:
        raise ModelError(f"{out}: Ultralytics finished without a final model (no on_train_end)")
    save_file(state, Run(out).weights)
    return {
        "epochs": epochs,
        "batches_per_epoch": math.ceil(n_train / budget.batch),
        "train_images": n_train,
        "close_mosaic_epochs": close,
        "warmup_epochs": round(warmup, 6),
        **counts,
        "images_seen": epochs * n_train,
        "seconds": round(seconds, 1),
    }


def load_detector(folder: Path, model_yaml: str, names: dict[int, str]) -> Any:
    """An ultralytics ``YOLO`` whose network holds ``folder/model.safetensors``."""
    ultralytics_offline()
    from safetensors.torch import load_file
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    try:
        state = load_file(Run(folder).weights)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{Run(folder).weights}: cannot read ({exc}); run `dvc repro train_yolo`") from None
    net = DetectionModel(model_yaml, nc=len(names), verbose=False)
    try:
        net.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError as exc:
        raise ModelError(f"{folder}: weights do not fit {model_yaml} with {len(names)} classes ({exc})") from None
    net.names = dict(names)
    yolo = YOLO(model_yaml)
    yolo.model = net.eval()
    return yolo


def validate(yolo: Any, data_yaml: Path, split: str, imgsz: int) -> Any:
    """Ultralytics' own validator on one split; returns its metrics object."""
    tmp = Path(tempfile.mkdtemp(prefix="synthaug-val-"))
    try:
        return yolo.val(
            data=str(data_yaml.resolve()),
            split=split,
            imgsz=imgsz,
            batch=16,
            device="cpu",
            workers=0,
            plots=False,
            verbose=False,
            project=str(tmp),
            name="val",
            exist_ok=True,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def detect(yolo: Any, files: Sequence[Path], imgsz: int, conf: float) -> list[list[tuple[int, tuple[float, ...]]]]:
    """(class, normalised xyxy) of every detection on each image."""
    out = []
    for i in range(0, len(files), 32):
        for r in yolo.predict(
            [str(f) for f in files[i : i + 32]], imgsz=imgsz, conf=conf, device="cpu", verbose=False, save=False
        ):
            out.append(
                [(int(c), tuple(float(v) for v in b)) for c, b in zip(r.boxes.cls.tolist(), r.boxes.xyxyn.tolist())]
            )
    return out
