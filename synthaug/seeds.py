"""Per-item seeds: every prompt record and img2img variant gets one from its names alone, so an
image never depends on which batch, process or order made it (prompts, img2img)."""

from __future__ import annotations

import hashlib


def stable_seed(*parts: object) -> int:
    """A 32-bit seed that depends only on ``parts`` (never on order of processing)."""
    text = ":".join(map(str, parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
