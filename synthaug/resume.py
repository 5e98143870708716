"""Resumable batch output for long generation stages.

DVC deletes a stage's outputs before running it unless they are ``persist: true``; the generation
stages persist theirs and keep a journal inside them: a fingerprint of everything that determines
the output, and one manifest part per finished batch (written atomically after the batch's
images). A rerun with the same fingerprint skips finished batches; a different fingerprint (new
params, prompts or model) wipes the folder first, so stale images never survive. Because batches
are a fixed partition of the work and each image depends only on its own record, a resumed run is
byte-identical to an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from tqdm import tqdm

from synthaug.errors import DataError

log = logging.getLogger("resume")

JOURNAL = ".resume"


def stable_seed(*parts: object) -> int:
    """A 32-bit seed that depends only on ``parts`` (never on order of processing)."""
    text = ":".join(map(str, parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def digest_files(paths: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for path in paths:
        for f in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if f.is_file():
                h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
                h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


class BatchJournal:
    def __init__(self, out: Path, fingerprint: dict):
        self.out = Path(out)
        self.dir = self.out / JOURNAL
        text = json.dumps(fingerprint, sort_keys=True, default=str)
        stamp = self.dir / "fingerprint.json"
        if not (stamp.exists() and stamp.read_text() == text):
            shutil.rmtree(self.out, ignore_errors=True)  # other inputs: nothing here is reusable
            self.dir.mkdir(parents=True)
            stamp.write_text(text)

    def _part(self, key: str) -> Path:
        return self.dir / f"{key}.jsonl"

    def done(self, key: str) -> bool:
        return self._part(key).exists()

    def finished(self) -> int:
        return len(list(self.dir.glob("*.jsonl")))

    def commit(self, key: str, records: list[dict]) -> None:
        tmp = self.dir / f"{key}.tmp"
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        tmp.replace(self._part(key))

    def finish(self, manifests: dict[Path, list[str]]) -> int:
        """Concatenate the parts of each manifest's keys (in order) into it; drop the journal."""
        total = 0
        for manifest, keys in manifests.items():
            lines = [self._part(k).read_text() for k in keys]
            manifest.parent.mkdir(parents=True, exist_ok=True)
            tmp = manifest.with_suffix(".tmp")
            tmp.write_text("".join(lines))
            tmp.replace(manifest)
            total += sum(text.count("\n") for text in lines)
        shutil.rmtree(self.dir)
        return total


def run_batches(journal: BatchJournal, items: Sequence, batch_size: int, prefix: str,
                work: Callable[[Sequence], list[dict]], desc: str) -> list[str]:
    """Run ``work`` on each unfinished fixed-size batch of ``items``, committing its manifest rows;
    return the batch keys in order. A tqdm bar counts items (finished ones included)."""
    keys = [f"{prefix}{i // batch_size:05d}" for i in range(0, len(items), batch_size)]
    done = sum(len(items[i * batch_size : (i + 1) * batch_size]) for i, k in enumerate(keys) if journal.done(k))
    if done:
        log.info("%s: resuming, %d of %d already done", desc, done, len(items))
    with tqdm(total=len(items), initial=done, desc=desc, unit="img") as bar:
        for i, key in enumerate(keys):
            if journal.done(key):
                continue
            batch = items[i * batch_size : (i + 1) * batch_size]
            journal.commit(key, work(batch))
            bar.update(len(batch))
    return keys


def read_jsonl(path: Path) -> list[dict]:
    records = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
    return records
