"""The names inside the folders dvc.yaml chooses: the only code that knows them.

dvc.yaml picks every root (``data/real``, ``data/synthetic/<kind>/<name>``, ``data/datasets/<variant>``,
``models/<trainer>/<variant>``) and passes it to the stage as an argument; these classes name what lies
under a root, so no stage builds a path by hand and each folder's layout is written once.

- :class:`Real` (prepare): ``classes.json``, ``splits.json``, ``cls/<split>/<class>/*.png`` and ``det/``.
- :class:`Source`, one layout for every synthetic source (txt2img, img2img, the real pool):
  ``cls/<class>/*.png`` + ``cls/manifest.jsonl``; img2img adds ``det/`` and ``det_val/`` (regenerated
  canvases: ``images/``, ``labels/``, ``manifest.jsonl``).
- :class:`Dataset` (assemble): the real layout's ``cls/{train,val}`` and ``det/``, plus ``cls/synthetic``
  and ``variant.json``.
- :class:`Detection`: an Ultralytics dataset folder (``data.yaml``, ``images/<split>``, ``labels/<split>``).
- :class:`Study`: the scheduler study's images (``<steps>/<class>/<id>.png``).
- :class:`Run`: a trained model's folder, one per seed (``<root>/seed<k>``); :func:`history_file`, its
  training history in a plots folder.
- :class:`Timings`: measured seconds, ``<stage>/<item>.json`` (wall-clock: outputs no stage depends on).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from synthaug.errors import DataError
from synthaug.files import read_json

MANIFEST = "manifest.jsonl"


def read_classes(path: Path) -> list[str]:
    """The class names, in label-id order (``classes.json``, written by prepare)."""
    names = read_json(path)
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise DataError(f"{path}: not a list of class names; run `dvc repro prepare` to write it again")
    return names


def label_of(image: Path) -> Path:
    """Ultralytics' rule: the label file of ``…/images/<rest>.png`` is ``…/labels/<rest>.txt``."""
    parts = image.parts
    if "images" not in parts:
        raise ValueError(f"{image}: not under an images/ folder; Ultralytics finds labels by that name")
    i = len(parts) - 1 - parts[::-1].index("images")
    return Path(*parts[:i], "labels", *parts[i + 1 :]).with_suffix(".txt")


@dataclass(frozen=True)
class Detection:
    root: Path

    @property
    def yaml(self) -> Path:
        return self.root / "data.yaml"

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    def images(self, split: str = "") -> Path:
        return self.root / "images" / split

    def labels(self, split: str = "") -> Path:
        return self.root / "labels" / split

    def canvases(self, split: str = "") -> list[Path]:
        return sorted(self.images(split).glob("*.png"))


@dataclass(frozen=True)
class Real:
    root: Path

    @property
    def classes_file(self) -> Path:
        return self.root / "classes.json"

    @property
    def splits_file(self) -> Path:
        return self.root / "splits.json"

    def classes(self) -> list[str]:
        return read_classes(self.classes_file)

    def cls(self, split: str) -> Path:
        return self.root / "cls" / split

    @property
    def det(self) -> Detection:
        return Detection(self.root / "det")

    def folders(self, split: str) -> list[Path]:
        """Every folder of one split: its ImageFolder, its canvases and their labels."""
        return [self.cls(split), self.det.images(split), self.det.labels(split)]

    def sheet(self, task: str, split: str) -> Path:
        """A split's contact sheet (``task``: cls or det), for a look at the data."""
        return self.root / f"contact_{task}_{split}.png"


@dataclass(frozen=True)
class Dataset(Real):
    @classmethod
    def of(cls, datasets: Path, variant: str) -> Dataset:
        return cls(datasets / variant)

    @property
    def variant_file(self) -> Path:
        return self.root / "variant.json"

    def split_folders(self) -> list[Path]:
        """Every folder with an ``MD5SUMS`` (assemble writes one into each): the trainers read them."""
        return [self.cls("synthetic"), *self.folders("train"), *self.folders("val")]


@dataclass(frozen=True)
class Source:
    root: Path

    @classmethod
    def of(cls, synthetic: Path, name: str) -> Source:
        """A source's folder is its name (``variants.<v>.source``: txt2img/ddim, img2img/0.5, real/pool)."""
        return cls(synthetic / name)

    @property
    def cls(self) -> Path:
        return self.root / "cls"

    @property
    def manifest(self) -> Path:
        return self.cls / MANIFEST

    @property
    def det(self) -> Detection:
        return Detection(self.root / "det")

    @property
    def det_val(self) -> Detection:
        return Detection(self.root / "det_val")


def variant_name(source: Path, k: int) -> str:
    """img2img's ``k``-th variant of a real image or canvas is named after it."""
    return f"{source.stem}-v{k}.png"


@dataclass(frozen=True)
class Study:
    """The scheduler study's images of one scheduler: ``<steps>/<class>/<id>.png``."""

    root: Path

    def steps(self, n: int) -> Path:
        return self.root / str(n)


@dataclass(frozen=True)
class Run:
    root: Path

    @classmethod
    def of(cls, trainer: Path, seed: int, variant: str = "") -> Run:
        """Seed ``seed``'s run under a trainer's folder (``variant``: under a folder of all variants)."""
        return cls(trainer / variant / f"seed{seed}")

    @property
    def weights(self) -> Path:
        return self.root / "model.safetensors"

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def history(self) -> Path:
        return self.root / "history.csv"

    @property
    def budget(self) -> Path:
        return self.root / "budget.json"


def regime(shots: int) -> str:
    """A regime's name — its folder under a ResNet trainer's outputs and its key in the metrics."""
    return f"{shots}shot"


def history_file(histories: Path, seed: int, variant: str = "") -> Path:
    """A run's training history in a DVC plots folder (``<histories>/[<variant>/]seed<k>.csv``),
    kept apart from its weights so the plots stay in git and the weights in DVC's cache."""
    return histories / variant / f"seed{seed}.csv"


@dataclass(frozen=True)
class Timings:
    """Measured seconds, one file per stage item (``txt2img/ddim.json``, ``study/ddim.json``,
    ``train_yolo/baseline.json``): written by the stage that measured them, read only for display."""

    root: Path

    def of(self, stage: str, item: str) -> Path:
        return self.root / stage / f"{item}.json"
