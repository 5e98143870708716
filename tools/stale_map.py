"""How many stages a one-line edit of each code module stales (``python tools/stale_map.py``): the
stages whose dvc.yaml deps list it, counted over the expanded stages (``txt2img@ddim`` is one)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        stages = list(repo.index.stages)
    counts = Counter(str(d.def_path) for s in stages for d in s.deps if str(d.def_path).endswith(".py"))
    print(f"{len(stages)} stages")
    for module, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"{n:4d}  {module}")


if __name__ == "__main__":
    main()
