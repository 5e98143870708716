"""Offline hardening: ultralytics and diffusers make no network attempt and write nothing to $HOME."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.helpers import GUARD, ROOT


def run_isolated(code: str, home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "YOLO_", "MPL", "XDG_"))}
    env.update(HOME=str(home), PYTHONPATH=str(ROOT))
    script = GUARD + textwrap.dedent(code) + "\nassert not attempts, attempts\nprint('OK')\n"
    return subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=home, text=True, capture_output=True, timeout=600
    )


def test_ultralytics_builds_and_finds_its_font_offline(tmp_path: Path):
    proc = run_isolated(
        """
        from synthaug.offline import harden, ultralytics_offline
        tmp = harden()
        ultralytics_offline()
        from ultralytics import YOLO
        from ultralytics.utils import SETTINGS
        from ultralytics.utils.checks import check_font
        model = YOLO("yolov8n.yaml")
        assert sum(p.numel() for p in model.model.parameters()) > 1e6
        assert str(check_font("Arial.ttf")).startswith(str(tmp)), check_font("Arial.ttf")
        assert not SETTINGS["sync"] and not SETTINGS["dvc"]
        """,
        tmp_path,
    )
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]
    assert list(tmp_path.iterdir()) == [], "something was written to $HOME or the cwd"


def test_diffusers_missing_hub_model_fails_without_network(tmp_path: Path):
    proc = run_isolated(
        """
        from synthaug.offline import harden
        harden()
        from diffusers import DDIMScheduler
        try:
            DDIMScheduler.from_pretrained("nobody/no-such-model", subfolder="scheduler")
        except OSError as exc:
            print("refused:", type(exc).__name__)
        else:
            raise SystemExit("loaded a model that cannot exist")
        """,
        tmp_path,
    )
    assert proc.returncode == 0 and "refused" in proc.stdout, proc.stderr[-3000:]
    assert list(tmp_path.iterdir()) == []


def test_allow_hub_turns_hub_access_back_on_after_import(tmp_path: Path):
    proc = run_isolated(
        """
        from synthaug.offline import allow_hub, harden
        harden()
        import huggingface_hub.constants as c
        assert c.is_offline_mode()
        allow_hub()
        assert not c.is_offline_mode()
        """,
        tmp_path,
    )
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]
