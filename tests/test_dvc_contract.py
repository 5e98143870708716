"""Contract between dvc.yaml, params.yaml and the stage code (resolved by DVC itself, so
foreach/matrix stages are checked item by item)."""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from synthaug import checksums
from synthaug.dag import code_deps, module_closure
from synthaug.layout import Real
from tests.helpers import ROOT, Dag


@functools.cache
def stages() -> tuple:
    """dvc.yaml's stages as DVC resolves them, read once: every parametrized test walks them all."""
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        return tuple(repo.index.stages)


def is_ignored(rel: str) -> bool:
    return subprocess.run(["git", "check-ignore", "-q", rel], cwd=ROOT).returncode == 0


@pytest.mark.parametrize("stage", stages(), ids=lambda s: s.addressing)
def test_stage_contract(stage):
    earlier_outs = []
    for s in stages():
        if s.addressing == stage.addressing:
            break
        earlier_outs += [str(o.def_path) for o in s.outs]
    cmd = stage.cmd
    match = re.match(r"python -m (?:synthaug\.launch (\w+)|synthaug\.warm) stages\.(\w+) ", cmd)
    assert match, (
        f"{stage.addressing}: cmd must be 'python -m synthaug.launch <section> stages.<name> ...' or "
        "'python -m synthaug.warm stages.<name> ...' (a warm process: start-up without the imports)"
    )
    source = ROOT / "stages" / f"{match.group(2)}.py"
    assert source.is_file()
    if match.group(1):  # the launcher runs first, and reads its own section of launch
        assert "synthaug/launch.py" in {str(d.def_path) for d in stage.deps}, f"{stage.addressing}: launch.py dep"
        assert match.group(1) in yaml.safe_load((ROOT / "params.yaml").read_text())["launch"]
    own = source.read_text()
    # keys are read by the stage or by the library it calls (params.py, the schema, names them all)
    text = "\n".join(f.read_text() for f in sorted(module_closure(source)) if f.name != "params.py")

    deps = {str(d.def_path) for d in stage.deps if type(d).__name__ == "Dependency"}
    for dep in deps:
        produced = any(
            dep == o or dep.startswith(o.rstrip("/") + "/") or o.startswith(dep.rstrip("/") + "/") for o in earlier_outs
        )
        assert produced or ((ROOT / dep).exists() and not is_ignored(dep)), (
            f"{stage.addressing}: dep {dep} is neither tracked nor an earlier stage's output"
        )
    if any(Path(d).name == checksums.NAME for d in deps):  # DVC hashes the MD5SUMS; the stage checks the folder
        assert "checksums.verify(" in own, f"{stage.addressing}: depends on an MD5SUMS but never calls checksums.verify"
    listed = {d for d in deps if re.fullmatch(r"(synthaug|stages)/\w+\.py", d)}
    need = code_deps(match.group(2))
    assert not need - listed, (
        f"{stage.addressing}: code deps missing: {sorted(need - listed)} (tools/sync_code_deps.py)"
    )
    assert not listed - need, f"{stage.addressing}: code deps it never imports: {sorted(listed - need)} (they stale it)"

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    declared = [k for d in stage.deps if type(d).__name__ == "ParamsDependency" for k in d.params]

    def lookup(key: str):
        node = params
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"{stage.addressing}: param {key} not in params.yaml"
            node = node[part]
        return node

    # A key part may be chosen at run time: by the command (--scheduler ddim) or by another param's value.
    dynamic = set(cmd.split()) | {str(v) for k in declared for v in [lookup(k)] if isinstance(v, (str, int, float))}
    for key in declared:
        lookup(key)
        head, *rest = key.split(".")
        assert re.search(rf"params\.{head}\b", text), f"{stage.addressing}: declares {key} but never reads {head}"
        for part in rest:
            assert re.search(rf"\b{part}\b", text) or part in dynamic, (
                f"{stage.addressing}: declares {key} but never reads {part}"
            )
    for section in set(re.findall(r"\bparams\.(\w+)", own)):
        assert any(k == section or k.startswith(section + ".") for k in declared), (
            f"{stage.addressing}: reads params.{section} but dvc.yaml does not declare it"
        )
    fingerprinted = re.search(r"^PARAMS = \((.*?)\)", own, re.M | re.S)  # a resumable stage's fingerprint keys
    if fingerprinted:
        names = dict(re.findall(r"--(\w+) (\S+)", cmd))
        keys = {k.format(**names) for k in re.findall(r'"([^"]+)"', fingerprinted.group(1))}
        assert keys == set(declared), (
            f"{stage.addressing}: fingerprint keys {sorted(keys)} != dvc.yaml's {sorted(declared)}"
        )


@functools.cache
def real_test_split() -> list[str]:
    """data/real's test split, as prepare's ``--out`` in dvc.yaml and synthaug.layout name it."""
    return [p.relative_to(ROOT).as_posix() for p in Real(Dag(ROOT).arg("prepare", "--out")).folders("test")]


@pytest.mark.parametrize("stage", stages(), ids=lambda s: s.addressing)
def test_only_evaluate_depends_on_the_test_split(stage):
    """No stage that chooses anything (quality, CAS, study, survival, training) may see test data;
    tests/test_evaluation.py runs them on a copy of the data without it."""
    if stage.addressing.startswith("evaluate@"):
        return
    deps = [str(d.def_path) for d in stage.deps if type(d).__name__ == "Dependency"]
    for split in real_test_split():
        reach = [d for d in deps if split == d or split.startswith(d.rstrip("/") + "/") or d.startswith(split)]
        assert not reach, f"{stage.addressing}: depends on {reach} ({split})"


@pytest.mark.parametrize("stage", stages(), ids=lambda s: s.addressing)
def test_produced_data_is_a_dep_through_files_not_folders(stage):
    """A produced data folder as a dep would put its thousands of files back into every ``dvc status``:
    a stage names the folder's MD5SUMS (or the one file it reads) and checks the folder on read."""
    earlier_outs = []
    for s in stages():
        if s.addressing == stage.addressing:
            break
        earlier_outs += [str(o.def_path) for o in s.outs]
    for dep in (str(d.def_path) for d in stage.deps if type(d).__name__ == "Dependency"):
        produced = any(dep == o or dep.startswith(o.rstrip("/") + "/") for o in earlier_outs)
        if produced and dep.startswith("data/"):
            assert Path(dep).name == checksums.NAME or Path(dep).suffix, (
                f"{stage.addressing}: depends on the folder {dep}; name its {checksums.NAME} instead"
            )


def budgets() -> dict[str, list[tuple[str, type, set[str]]]]:
    """Stage name → the budget sections its code reads whole (section, schema dataclass, fields that
    are matrix axes dvc.yaml expands instead)."""
    from synthaug.params import ResnetBudget, TrainResnetParams, TrainYoloParams, YoloBudgetParams

    return {
        "train_resnet": [("train_resnet", TrainResnetParams, set())],
        "judge": [("judge", ResnetBudget, set())],
        "quality_txt2img": [("train_resnet", ResnetBudget, set())],  # CAS trains with the budget
        "quality_img2img": [("train_resnet", ResnetBudget, set())],
        "pretrain_yolo": [("pretrain_yolo", YoloBudgetParams, set())],
        "train_yolo": [("train_yolo", TrainYoloParams, set())],
    }


@pytest.mark.parametrize("stage", stages(), ids=lambda s: s.addressing)
def test_every_budget_key_a_stage_reads_is_declared(stage):
    """A budget field added to the schema but not to dvc.yaml would change results and rerun nothing."""
    declared = {k for d in stage.deps if type(d).__name__ == "ParamsDependency" for k in d.params}
    for section, schema, axes in budgets().get(stage.addressing.split("@")[0], []):
        for name in set(schema.__dataclass_fields__) - axes:
            key = f"{section}.{name}"
            assert section in declared or key in declared, (
                f"{stage.addressing}: reads {key}, dvc.yaml does not declare it"
            )


@functools.cache
def wall_clock_outputs() -> frozenset[str]:
    """Every output that holds measured seconds or run-specific bytes: the ``--timings`` and
    ``--runs`` each stage command names, and train_yolo's ``--history`` (Ultralytics' results.csv
    has a time column)."""
    measured = set()
    for s in stages():
        args = dict(re.findall(r"--([\w-]+) (\S+)", s.cmd))
        measured |= {args[flag] for flag in ("timings", "runs") if flag in args}
        if s.addressing.startswith("train_yolo@"):
            measured.add(args["history"])
    return frozenset(measured)


@pytest.mark.parametrize("stage", stages(), ids=lambda s: s.addressing)
def test_no_stage_depends_on_wall_clock_outputs(stage):
    """A dep on measured seconds would make a byte-identical rerun rerun everything downstream
    (tests/test_dvc_pipeline.py reruns txt2img and finds dvc status clean)."""
    measured = wall_clock_outputs()
    assert {"timings/txt2img/ddim.json", "timings"} <= measured  # the check sees what it guards
    for dep in (str(d.def_path) for d in stage.deps if type(d).__name__ == "Dependency"):
        reach = [m for m in measured if dep == m or dep.startswith(m.rstrip("/") + "/") or m.startswith(dep + "/")]
        assert not reach, f"{stage.addressing}: depends on {dep}, which holds {reach} (wall-clock)"


def readme_stage_rows() -> dict[str, str]:
    """The README's pipeline table: stage name (without its ``@<item>``) → the row's text."""
    text = (ROOT / "README.md").read_text()
    table = text[text.index("## Pipeline") :].split("\n\n")[1]
    rows = {}
    for line in table.splitlines()[2:]:
        for name in re.findall(r"`(\w+)(?:@[^`]*)?`", line.split("|")[1]):
            rows[name] = line
    return rows


@pytest.mark.parametrize("stage", stages(), ids=lambda s: s.addressing)
def test_the_readme_stage_table_matches_dvc_yaml(stage):
    """Every stage has a row, and the row names every output dvc.yaml gives it, up to its first per-item
    part (``data/synthetic/txt2img/${item.scheduler}`` is checked as ``data/synthetic/txt2img``), or its folder."""
    rows = readme_stage_rows()
    name = stage.addressing.split("@")[0]
    assert name in rows, f"README's pipeline table has no row for {name}"
    with open(ROOT / "dvc.yaml") as fh:
        definition = yaml.safe_load(fh)["stages"][name]
    definition = definition.get("do", definition)
    for kind in ("outs", "metrics", "plots"):
        for out in definition.get(kind, []):
            path = next(iter(out)) if isinstance(out, dict) else out
            fixed = path.split("${")[0].rstrip("/")  # a file may be named by its folder
            assert fixed in rows[name] or str(Path(fixed).parent) + "/" in rows[name], f"README: {name} lacks {path}"
