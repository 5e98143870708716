"""Reading and writing the pipeline's small files (JSON, JSONL, CSV, text, bytes). Every write is
atomic: the bytes go to a hidden temp file beside the target, which replaces it only when complete.
A stage killed mid-write leaves the old file or none, never half of one for DVC to hash.
(Folders are written the same way by :func:`synthaug.images.atomic_dir`.)"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from synthaug.errors import DataError


def write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: Path, obj: Any) -> None:
    """Indented JSON with a final newline (DVC metrics, configs, manifests' neighbours)."""
    write_text(path, json.dumps(obj, indent=2) + "\n")


def write_csv(path: Path, rows: Sequence[dict], fieldnames: Sequence[str] | None = None) -> None:
    """A header and one line per row dict (the csv module's own dialect: CRLF line ends), as DVC
    plots read it."""
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=list(fieldnames or rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def write_jsonl(path: Path, rows: Sequence[dict]) -> None:
    """One JSON object per line (manifests, prompts)."""
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_json(path: Path) -> Any:
    """A pipeline JSON file; missing or broken is one error line naming it."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc}); run `dvc repro` to make it again") from None


def read_jsonl(path: Path) -> list[dict]:
    records = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
    return records
