"""Which machine computed a result: the CPU, the SIMD kernels torch dispatches to and the thread count.
Floating-point results depend on all three (another kernel path rounds differently), so every
trained model records them and the report names them beside the numbers."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's marketing name (``model name`` in /proc/cpuinfo; the platform's guess elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """This process's CPU, torch's CPU capability (``ATEN_CPU_CAPABILITY`` can lower it) and threads."""
    import torch

    return {
        "cpu": cpu_model(),
        "capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
