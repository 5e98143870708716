"""Resumable batch output for long generation stages.

DVC deletes a stage's outputs before running it unless they are ``persist: true``; the generation
stages persist theirs and keep a journal inside them: a fingerprint of everything that determines
the output, and one manifest part per finished batch (written atomically after the batch's
images). A rerun with the same fingerprint skips finished batches; a different fingerprint (new
params, prompts or model) wipes the folder first, so stale images never survive. Because batches
are a fixed partition of the work and each image depends only on its own record, a resumed run is
byte-identical to an uninterrupted one.

The same partition shares the work out when a launcher started several processes: each takes its
own contiguous run of batches, and the main process merges the parts in batch order, so images and
manifests are byte-identical for any number of processes. Sampling time is measured per batch and
kept out of the manifests (see :meth:`BatchJournal.finish`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from synthaug.files import write_json, write_jsonl, write_text

log = logging.getLogger("resume")

JOURNAL = ".resume"


def digest_files(paths: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for path in paths:
        for f in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if f.is_file():
                h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
                with open(f, "rb") as fh:  # streamed: a Stable Diffusion folder holds GBs
                    h.update(hashlib.file_digest(fh, "sha256").digest())
    return h.hexdigest()


def declared_params(params: Any, keys: Sequence[str], **names: str) -> dict[str, Any]:
    """The values of the param keys a stage declares in dvc.yaml (a ``{name}`` part filled in from
    ``names``, as dvc.yaml's ``${item.name}``): its resume fingerprint covers exactly what DVC reruns
    it for (tests/test_dvc_contract.py checks the keys against dvc.yaml)."""
    out = {}
    for key in keys:
        key = key.format(**names)
        node = params
        for part in key.split("."):
            node = node[part] if isinstance(node, dict) else getattr(node, part)
        out[key] = node
    return out


def file_sha256(path: Path) -> str:
    with open(path, "rb") as fh:  # streamed: a checkpoint holds GBs
        return hashlib.file_digest(fh, "sha256").hexdigest()


def model_digest(model: str, builtin: Path) -> str:
    """What generated images depend on of ``generate.model``: the files of the builtin model or of a
    local folder (weights replaced in place must not resume onto old batches), a single-file
    checkpoint's sha256 (what ``sha256sum`` prints; A1111's Model hash is its first 10 digits), else
    the hub id."""
    path = Path(builtin) if model == "builtin" else Path(model)
    if path.is_file():
        return file_sha256(path)
    return digest_files([path]) if path.is_dir() else model


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

    def commit(self, key: str, records: list[dict], seconds: float) -> None:
        (self.dir / f"{key}.seconds").write_text(f"{seconds:.6f}\n")  # before the part: a part marks a batch done
        write_jsonl(self._part(key), records)

    def finish(self, manifests: dict[Path, list[str]]) -> dict[Path, dict[str, float]]:
        """Concatenate the parts of each manifest's keys (in order) into it; drop the journal. Returns
        each manifest's image count and measured seconds per image (not deterministic, so they are
        reported apart from the manifest)."""
        totals = {}
        for manifest, keys in manifests.items():
            lines = [self._part(k).read_text() for k in keys]
            write_text(manifest, "".join(lines))
            n = sum(text.count("\n") for text in lines)
            seconds = sum(float((self.dir / f"{k}.seconds").read_text()) for k in keys)
            totals[manifest] = {"images": n, "seconds_per_image": round(seconds / n, 5) if n else 0.0}
        shutil.rmtree(self.dir)
        return totals


def run_batches(
    journal: BatchJournal,
    items: Sequence,
    batch_size: int,
    prefix: str,
    work: Callable[[Sequence], list[dict]],
    desc: str,
    group: Any = None,
) -> list[str]:
    """Run ``work`` on each unfinished fixed-size batch of ``items`` — of this process's share of
    them when ``group`` (see synthaug.launch.process_group) has several — committing its manifest
    rows; return all batch keys in order once every process is done. A tqdm bar on the main process
    counts its share's items (finished ones included)."""
    keys = [f"{prefix}{i // batch_size:05d}" for i in range(0, len(items), batch_size)]
    mine = list(range(len(keys)))
    if group is not None and group.num_processes > 1:
        with group.split_between_processes(mine) as share:
            mine = list(share)
        desc = f"{desc} [{group.process_index + 1}/{group.num_processes}]"
    batches = {i: items[i * batch_size : (i + 1) * batch_size] for i in mine}
    total = sum(map(len, batches.values()))
    done = sum(len(batches[i]) for i in mine if journal.done(keys[i]))
    if done:
        log.info("%s: resuming, %d of %d already done", desc, done, total)
    main = group is None or group.is_local_main_process
    with tqdm(total=total, initial=done, desc=desc, unit="img", disable=not main) as bar:
        for i in mine:
            if journal.done(keys[i]):
                continue
            t0 = time.perf_counter()
            rows = work(batches[i])
            journal.commit(keys[i], rows, time.perf_counter() - t0)
            bar.update(len(batches[i]))
    if group is not None:
        group.wait_for_everyone()
    return keys


def write_timing(path: Path, parts: dict[str, dict[str, float]], processes: int) -> None:
    """A generation stage's timings file: per part, images and seconds per image. Wall-clock, so it
    is an output nothing depends on (dvc.yaml's ``timings/``), never a DVC metric."""
    write_json(path, {**parts, "processes": processes})
