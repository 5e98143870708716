"""Offline hardening, in one place: call :func:`harden` before importing diffusers/ultralytics.

What it turns off and why:
- Hugging Face hub/transformers/diffusers: ``HF_HUB_OFFLINE`` so ``from_pretrained`` never
  reaches the network (a hub id must already be in the local cache), telemetry off.
- ultralytics: ``YOLO_OFFLINE`` (no online checks), its settings dir in a per-process temp dir (not
  ``~/.config``), a local copy of the font its plots would otherwise download, every logger
  integration off (``dvc`` above all: inside a DVC stage it would hook DVCLive into training).
- matplotlib: its font cache goes to the same temp dir instead of ``~/.cache``.
DVC's own analytics and update checks are off in ``.dvc/config``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

_STATE: dict[str, Path] = {}

ULTRALYTICS_SETTINGS_OFF = {
    "sync": False,
    "dvc": False,
    "mlflow": False,
    "comet": False,
    "clearml": False,
    "raytune": False,
    "tensorboard": False,
    "wandb": False,
    "neptune": False,
    "hub": False,
}


def harden() -> Path:
    """Make this process offline and home-directory clean; return its private config dir
    (:func:`allow_hub` turns the Hugging Face hub back on, for ``generate.offline: false``)."""
    if "dir" not in _STATE:
        tmp = Path(tempfile.mkdtemp(prefix="synthaug-"))
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)
        _STATE["dir"] = tmp
    tmp = _STATE["dir"]
    env = {
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "DISABLE_TELEMETRY": "1",
        "DO_NOT_TRACK": "1",
        "YOLO_OFFLINE": "1",
        "YOLO_CONFIG_DIR": str(tmp),
        "YOLO_VERBOSE": "False",
        "MPLCONFIGDIR": str(tmp / "matplotlib"),
        "MPLBACKEND": "Agg",
        "DVC_NO_ANALYTICS": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    os.environ.update(env)
    return tmp


def allow_hub() -> None:
    """Let ``from_pretrained`` download from the Hugging Face hub (``generate.offline: false``),
    also when huggingface_hub was imported — and read ``HF_HUB_OFFLINE`` — already."""
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ[key] = "0"
    import huggingface_hub.constants

    huggingface_hub.constants.HF_HUB_OFFLINE = False


def ultralytics_offline() -> None:
    """Import-time and settings hardening of ultralytics; call after :func:`harden`."""
    tmp = harden() if "dir" not in _STATE else _STATE["dir"]
    fonts = tmp / "Ultralytics"
    fonts.mkdir(parents=True, exist_ok=True)
    import matplotlib

    # ultralytics downloads Arial for plot labels; any TTF serves, and matplotlib ships one.
    dejavu = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        if not (fonts / name).exists():
            shutil.copyfile(dejavu, fonts / name)
    import torch
    import ultralytics.utils.torch_utils as tu
    from ultralytics.utils import SETTINGS

    SETTINGS.update({k: v for k, v in ULTRALYTICS_SETTINGS_OFF.items() if k in SETTINGS})
    # select_device() resets torch's threads to this (the machine's cores - 1): follow the stage's pin
    tu.NUM_THREADS = torch.get_num_threads()
