"""The judge's features of the real reference images, written once by stage reference and read by the
quality and study stages (one file in their deps instead of the 3,000 images it was computed from)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from synthaug.errors import DataError
from synthaug.files import write_bytes

REMAKE = "remake it with `dvc repro -f reference`"


def save_reference(path: Path, features: torch.Tensor) -> None:
    """Write ``features`` (one row per reference image), atomically."""
    write_bytes(path, save({"features": features.float().contiguous()}, metadata={"images": str(len(features))}))


def load_reference(path: Path, judge: torch.nn.Module) -> torch.Tensor:
    """The features :func:`save_reference` wrote, checked against the ``judge`` that will be compared with them."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: missing; compute the judge's reference features first (`dvc repro reference`)")
    try:
        features = load_file(path).get("features")
    except (OSError, SafetensorError) as exc:
        raise DataError(f"{path}: not a safetensors file ({exc}); {REMAKE}") from None
    if features is None or features.ndim != 2 or len(features) < 2:
        raise DataError(f"{path}: no 'features' tensor of at least 2 rows; {REMAKE}")
    if features.shape[1] != judge.fc.in_features:
        raise DataError(
            f"{path}: {features.shape[1]} features per image, but the judge makes {judge.fc.in_features}: "
            f"they come from another judge; {REMAKE}"
        )
    return features
