"""``MD5SUMS``: a folder's files and their checksums, in the format ``md5sum -c MD5SUMS`` checks.

The stage that writes a folder other stages read writes its ``MD5SUMS`` last: prepare into every
split folder of data/real (``cls/<split>``, ``det/images/<split>``, ``det/labels/<split>``), assemble
into every one of a dataset, txt2img, img2img, real_pool and study at their root. A stage that reads
such a folder names its ``MD5SUMS`` as the dependency in dvc.yaml instead of the folder — so ``dvc
status`` hashes one file instead of thousands — and calls :func:`verify` before it reads: every file
must be listed, present and unchanged, the guarantee DVC gave by hashing the folder, kept by the
reader instead.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from synthaug.errors import DataError
from synthaug.files import read_json, write_text

NAME = "MD5SUMS"
LINE = re.compile(r"([0-9a-f]{32}) [ *](.+)")
FIX = "`dvc checkout` puts back what DVC recorded, `dvc repro` writes it again"


def md5(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "md5").hexdigest()


def listing(folder: Path) -> list[str]:
    """Every file under ``folder`` (its own ``MD5SUMS`` aside), as sorted POSIX paths relative to it."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != NAME)


def write(folder: Path) -> Path:
    """``folder``'s ``MD5SUMS`` (written atomically, like every pipeline file)."""
    folder = Path(folder)
    path = folder / NAME
    write_text(path, "".join(f"{md5(folder / rel)}  {rel}\n" for rel in listing(folder)))
    return path


def read(path: Path) -> dict[str, str]:
    """An ``MD5SUMS`` file: relative path → md5."""
    sums = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror}); run `dvc repro` to write its folder again") from None
    for lineno, line in enumerate(lines, start=1):
        match = LINE.fullmatch(line)
        if not match:
            raise DataError(f"{path}:{lineno}: not an md5sum line ('<md5>  <file>'); run `dvc repro` to write it again")
        sums[match.group(2)] = match.group(1)
    return sums


def verify(*folders: Path) -> None:
    """Check each folder against its ``MD5SUMS``; the first difference is one error line that names
    the file and how to put it right."""
    for folder in map(Path, folders):
        sums = read(folder / NAME)
        files = listing(folder)
        missing = sorted(sums.keys() - set(files))
        if missing:
            raise DataError(
                f"{folder / missing[0]}: listed in {folder / NAME} but missing ({len(missing)} such); {FIX}"
            )
        extra = [f for f in files if f not in sums]
        if extra:
            raise DataError(
                f"{folder / extra[0]}: not in {folder / NAME} ({len(extra)} such files): added after the folder "
                f"was written; remove it, or {FIX}"
            )
        for rel in files:
            if md5(folder / rel) != sums[rel]:
                raise DataError(f"{folder / rel}: changed since {folder / NAME} was written; {FIX}")


def digest(*folders: Path) -> str:
    """One md5 for the contents of ``folders``: of their ``MD5SUMS``, in order. A stage's metrics
    record it for the folders it read or wrote, so a stage that depends on those metrics — one small
    file per item, where no folder of MD5SUMS exists — reruns exactly when the images change."""
    h = hashlib.md5()
    for folder in map(Path, folders):
        h.update((folder / NAME).read_bytes())
    return h.hexdigest()


def verify_recorded(metrics: Path, *folders: Path) -> None:
    """:func:`verify` ``folders`` and check that they are the ones ``metrics`` recorded as its
    ``content_md5`` — for a stage that depends on that metrics file in their stead."""
    verify(*folders)
    recorded = read_json(metrics).get("content_md5")
    if recorded != digest(*folders):
        raise DataError(
            f"{folders[0]}: not the images {metrics} records (content_md5 {recorded}); run `dvc repro` to bring "
            "them in step"
        )
