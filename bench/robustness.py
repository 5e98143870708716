"""Does the verdict survive another kernel path? Rerun training and evaluation as another CPU would compute them.

    python bench/robustness.py [--repo .] [--scratch /tmp/synthaug-robust] [--capability avx2]
    python bench/robustness.py --against REV   # no rerun: this workspace's verdict vs the one committed at REV
    python bench/robustness.py --keep --stages S1 S2  # in the scratch copy an earlier run left: rerun only these

Copies the workspace ``--repo`` (every output in place, after ``make repro``) to ``--scratch``, then
reruns there every ``train_resnet``, ``train_yolo``, ``evaluate`` stage and ``summarize`` with
``ATEN_CPU_CAPABILITY=<capability>``: ATen then dispatches to other SIMD kernels (by default AVX2 on
an AVX-512 CPU, plain C++ on an AVX2 one), which round differently — the size of difference another
x86 CPU makes. The generated images, datasets and judge stay as they are, so what moves is what
training and evaluation compute. ``--against REV`` compares instead with the summary committed at a
git revision — made on another machine, the real thing this emulates. Prints both summaries'
conclusions side by side — per regime, variant and headline metric: beats the baseline / falls
below it / undecided, after Holm's adjustment — and the exchange rates, and exits non-zero if any
conclusion differs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from synthaug.metrics import METRIC_BY_NAME

RERUN = ("train_resnet@", "train_yolo@", "evaluate@", "summarize")


def conclusions(summary: dict) -> dict[str, str]:
    """(regime variant metric) → the word the verdict says about it."""
    out = {}
    for regime, rows in summary["regimes"].items():
        for variant, metrics in rows.items():
            for metric, row in metrics.items():
                d = row.get("diff_vs_baseline")
                if not d or not METRIC_BY_NAME[metric].headline:
                    continue
                if d["beats_baseline"]:
                    word = "beats"
                elif d["p_holm"] is not None and d["p_holm"] < summary["alpha"] and d["mean"] < 0:
                    word = "below"
                else:
                    word = "undecided"
                out[f"{regime} {variant} {metric}"] = word
    return out


def describe(summary: dict, key: str) -> str:
    regime, variant, metric = key.split()
    d = summary["regimes"][regime][variant][metric]["diff_vs_baseline"]
    return f"{d['mean']:+.3f} ± {d['ci95']:.3f} (p_Holm {d['p_holm']:.3f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, default=Path("."))
    ap.add_argument("--scratch", type=Path, default=Path("/tmp/synthaug-robust"))
    ap.add_argument("--capability", help="ATEN_CPU_CAPABILITY: default, avx2, avx512 (default: one below this CPU's)")
    ap.add_argument("--against", metavar="REV", help="compare with metrics/summary.json at this git revision")
    ap.add_argument("--keep", action="store_true", help="reuse --scratch as an earlier run left it (one that stopped)")
    ap.add_argument("--stages", nargs="*", help="rerun only these stages (none: just compare); default: all of them")
    args = ap.parse_args()
    repo, scratch = args.repo.resolve(), args.scratch.resolve()
    summary_file = Path("metrics/summary.json")
    if not (repo / summary_file).is_file():
        sys.exit(f"{repo / summary_file}: missing; run `make repro` in {repo} first")
    ours = json.loads((repo / summary_file).read_text())
    if args.against:
        show = ["git", "show", f"{args.against}:{summary_file}"]
        theirs = json.loads(subprocess.run(show, cwd=repo, capture_output=True, text=True, check=True).stdout)
        sys.exit(compare(theirs, ours, f"at {args.against}", "this workspace"))
    import torch

    native = torch.backends.cpu.get_cpu_capability()
    capability = args.capability or ("avx2" if native.startswith("AVX512") else "default")
    if args.keep and not (scratch / summary_file).is_file():
        sys.exit(f"--keep: {scratch} holds no earlier run; leave --keep out to make the copy")
    if not args.keep:
        copy_workspace(repo, scratch)
    env = dict(os.environ, ATEN_CPU_CAPABILITY=capability, DVC_NO_ANALYTICS="1")
    env["PATH"] = f"{scratch / '.venv' / 'bin'}:{env['PATH']}"
    names = subprocess.run(
        ["dvc", "stage", "list", "--name-only"], cwd=scratch, env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    targets = sorted(
        (n for n in names if n.startswith(RERUN)), key=lambda n: [n.startswith(p) for p in RERUN].index(True)
    )
    if args.stages is not None:
        unknown = sorted(set(args.stages) - set(targets))
        if unknown:
            sys.exit(f"--stages: {', '.join(unknown)} not among the stages this bench reruns: {', '.join(targets)}")
        targets = [n for n in targets if n in args.stages]
    t0 = time.perf_counter()
    if targets:
        subprocess.run(["dvc", "repro", "--force", "--single-item", *targets], cwd=scratch, env=env, check=True)
    minutes = (time.perf_counter() - t0) / 60
    theirs = json.loads((scratch / summary_file).read_text())
    print(f"\nreran {len(targets)} stages with ATEN_CPU_CAPABILITY={capability} in {minutes:.1f} min")
    sys.exit(compare(ours, theirs, f"{native} kernels", capability))


def copy_workspace(repo: Path, scratch: Path) -> None:
    """``repo`` to ``scratch`` without what the rerun remakes or never reads; the venv as a link."""
    if scratch.exists():
        shutil.rmtree(scratch)
    skip = {repo / p for p in (".venv", ".dvc/cache", "models/resnet", "models/yolo", "runs")}

    def ignore(folder: str, names: list[str]) -> list[str]:
        return [n for n in names if Path(folder, n) in skip]

    shutil.copytree(repo, scratch, symlinks=True, ignore=ignore)
    if (repo / ".venv").is_dir():
        (scratch / ".venv").symlink_to(repo / ".venv")


def compare(ours: dict, theirs: dict, left_name: str, right_name: str) -> int:
    """Print two summaries' conclusions and exchange rates side by side; 0 if every conclusion agrees."""
    print(f"left: {ours.get('machines')} | right: {theirs.get('machines')}")
    a, b = conclusions(ours), conclusions(theirs)
    width = max(map(len, a))
    print(f"\n{'comparison':<{width}}  {left_name:<40}{right_name:<40}")
    for key in a:
        mark = "" if a[key] == b.get(key) else "   <-- differs"
        right = f"{b[key]} {describe(theirs, key)}" if key in b else "?"
        print(f"{key:<{width}}  {a[key] + ' ' + describe(ours, key):<40}{right:<40}{mark}")
    for regime, e in ours.get("exchange", {}).items():
        for v, r in e["variants"].items():
            t = theirs.get("exchange", {}).get(regime, {}).get("variants", {}).get(v)
            other = f"{t['real_per_class']:.1f} {t['ci95']}" if t else "?"
            print(f"{regime} {v}: worth {r['real_per_class']:.1f} {r['ci95']} | {other}")
    same = sum(a[k] == b.get(k) for k in a)
    print(f"\n{same} of {len(a)} conclusions agree")
    return 0 if same == len(a) else 1


if __name__ == "__main__":
    main()
