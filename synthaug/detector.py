"""Trained YOLO detectors, loaded from ``model.safetensors`` (never from pickled ``.pt``
checkpoints) into the architecture of their model yaml; validation and prediction without files
written anywhere but a temporary folder. Shared by evaluate and quality."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from synthaug.errors import ModelError
from synthaug.offline import ultralytics_offline


def load_detector(folder: Path, model_yaml: str, names: dict[int, str]) -> Any:
    """An ultralytics ``YOLO`` whose network holds ``folder/model.safetensors``."""
    ultralytics_offline()
    from safetensors.torch import load_file
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    try:
        state = load_file(folder / "model.safetensors")
    except (OSError, ValueError) as exc:
        raise ModelError(f"{folder}/model.safetensors: cannot read ({exc}); run `dvc repro train_yolo`") from None
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
        return yolo.val(data=str(data_yaml.resolve()), split=split, imgsz=imgsz, batch=16, device="cpu",
                        workers=0, plots=False, verbose=False, project=str(tmp), name="val", exist_ok=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def detect(yolo: Any, files: Sequence[Path], imgsz: int, conf: float) -> list[list[tuple[int, tuple[float, ...]]]]:
    """(class, normalised xyxy) of every detection on each image."""
    out = []
    for i in range(0, len(files), 32):
        for r in yolo.predict([str(f) for f in files[i : i + 32]], imgsz=imgsz, conf=conf, device="cpu",
                              verbose=False, save=False):
            out.append([(int(c), tuple(float(v) for v in b))
                        for c, b in zip(r.boxes.cls.tolist(), r.boxes.xyxyn.tolist())])
    return out
