"""Real DVC runs in a scratch clone of the working tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import Dag, sh


@pytest.mark.slow
def test_prepare_repro_is_deterministic_and_status_clean(scratch_repo: Path):
    sh("dvc", "repro", "-f", "prepare", cwd=scratch_repo)
    first = (scratch_repo / "dvc.lock").read_text()
    sh("dvc", "repro", "-f", "prepare", cwd=scratch_repo)
    assert (scratch_repo / "dvc.lock").read_text() == first
    assert "up to date" in sh("dvc", "status", "prepare", cwd=scratch_repo)


def params_changed(repo: Path) -> set[str]:
    """Stages whose params differ from dvc.lock (outputs absent from the scratch repo are ignored)."""
    import json

    status = json.loads(sh("dvc", "status", "--json", cwd=repo))
    changed = set()
    for stage, entries in status.items():
        for entry in entries:
            if isinstance(entry, dict) and "params.yaml" in entry.get("changed deps", {}):
                changed.add(stage)
    return changed


def edit_params(repo: Path, edit) -> None:
    import yaml

    params = yaml.safe_load((repo / "params.yaml").read_text())
    edit(params)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def code_changed(repo: Path) -> dict[str, set[str]]:
    """Stage → the code deps (``*.py``) dvc status finds modified against dvc.lock."""
    import json

    status = json.loads(sh("dvc", "status", "--json", cwd=repo))
    return {
        stage: {dep for dep in entry["changed deps"] if dep.endswith(".py")}
        for stage, entries in status.items()
        for entry in entries
        if isinstance(entry, dict) and any(dep.endswith(".py") for dep in entry.get("changed deps", {}))
    }


def test_a_library_edit_stales_only_the_stages_that_import_it(scratch_repo: Path):
    """metrics.py is evaluate's, summarize's and the report's: a docstring edit there leaves every
    other stage up to date (params.py once imported it, and with it every stage)."""
    assert code_changed(scratch_repo) == {}
    module = scratch_repo / "synthaug" / "metrics.py"
    module.write_text('"""An edited docstring."""\n' + module.read_text())
    stale = set(code_changed(scratch_repo))
    assert stale == {
        s for s in sh("dvc", "stage", "list", "--name-only", cwd=scratch_repo).split() if s.startswith("evaluate@")
    } | {"summarize", "report"}


def test_one_scheduler_edit_touches_only_its_branch(scratch_repo: Path):
    assert params_changed(scratch_repo) == set()
    edit_params(scratch_repo, lambda p: p["schedulers"]["ddim"].update(eta=1.0))
    assert params_changed(scratch_repo) == {"txt2img@ddim", "study@ddim"}  # its samples and its study only
    edit_params(scratch_repo, lambda p: p["schedulers"]["ddim"].update(eta=0.0))
    edit_params(scratch_repo, lambda p: p["schedulers"]["pndm"].update(skip_prk_steps=False))
    assert params_changed(scratch_repo) == {"txt2img@pndm", "study@pndm"}


def test_adding_a_scheduler_adds_exactly_one_branch(scratch_repo: Path):
    before = set(sh("dvc", "stage", "list", "--name-only", cwd=scratch_repo).split())
    edit_params(scratch_repo, lambda p: p["txt2img"]["schedulers"].append("euler"))
    after = set(sh("dvc", "stage", "list", "--name-only", cwd=scratch_repo).split())
    assert after - before == {"txt2img@euler", "quality_txt2img@euler", "study@euler"} and before <= after


@pytest.mark.parametrize("section, key, value", [("train_yolo", "epochs", 30), ("train_resnet", "lr", 0.01)])
def test_training_params_touch_only_their_trainer(scratch_repo: Path, section: str, key: str, value):
    edit_params(scratch_repo, lambda p: p[section].update({key: value}))
    changed = params_changed(scratch_repo)
    trainers = {stage for stage in changed if stage.startswith(f"{section}@")}
    # CAS (train on synthetic, test on real) uses train_resnet's budget, so it follows it
    others = {stage for stage in changed - trainers if not (section == "train_resnet" and stage.startswith("quality_"))}
    assert not others, others
    import yaml

    params = yaml.safe_load((scratch_repo / "params.yaml").read_text())
    variants = params["trials"]["yolo_variants"] if section == "train_yolo" else params["variants"]
    assert len(trainers) == len(variants)  # one stage per variant trains all its seeds
    if section == "train_resnet":
        assert len(changed - trainers) == len(params["txt2img"]["schedulers"]) + len(params["img2img"]["strengths"])


def test_editing_one_variant_ratio_touches_only_that_variant(scratch_repo: Path):
    edit_params(scratch_repo, lambda p: p["variants"]["ddim"].update(ratio=0.5))
    assert params_changed(scratch_repo) == {
        "assemble@ddim",
        "train_resnet@ddim",
        "evaluate@ddim",  # it reads the variant's regimes (an optional key DVC cannot list alone)
        "summarize",
        "report",
    }  # they print the ratio


def test_how_sampling_runs_reruns_nothing_and_training_processes_rerun_only_the_trainers(scratch_repo: Path):
    edit_params(scratch_repo, lambda p: p["launch"]["sampling"].update(launcher="accelerate", processes=8))
    assert params_changed(scratch_repo) == set()  # byte-identical outputs (tests/test_launch.py): nothing to redo
    edit_params(scratch_repo, lambda p: p["launch"]["runs"].update(workers=1))
    assert params_changed(scratch_repo) == set()  # how many runs at once changes no run
    edit_params(scratch_repo, lambda p: p["launch"]["runs"].update(threads=2))  # each run's threads: its result
    assert {s.split("@")[0] for s in params_changed(scratch_repo)} == {"train_resnet", "train_yolo"}
    edit_params(scratch_repo, lambda p: p["launch"]["runs"].update(threads=1))
    edit_params(scratch_repo, lambda p: p["launch"]["training"].update(launcher="torchrun", processes=2))
    assert {s.split("@")[0] for s in params_changed(scratch_repo)} == {"train_resnet"}


@pytest.mark.slow
def test_a_byte_identical_rerun_leaves_dvc_status_clean(scratch_repo: Path):
    """txt2img rerun makes the same images and new seconds: the seconds live in timings/, which no
    stage depends on, so quality and the study — which once read them — stay up to date."""
    import json

    def small(p: dict) -> None:
        p["prompts"]["per_class"] = 2
        p["generate"].update(steps=3, batch_size=20)  # img2img at 0.4 needs int(steps × 0.4) ≥ 1
        p["study"].update(steps=[1], per_class=2)
        for budget in (p["judge"], p["train_resnet"]):  # train_resnet's budget is quality's CAS
            budget.update(steps=2, batch_size=8, eval_every=1, warmup_steps=1)

    edit_params(scratch_repo, small)
    targets = ("quality_txt2img@ddim", "study@ddim")
    sh("dvc", "repro", *targets, cwd=scratch_repo)
    dag = Dag(scratch_repo)
    images = sorted(Path(dag.arg("txt2img@ddim", "--out")).rglob("*.png"))
    before = {f: f.read_bytes() for f in images}
    sh("dvc", "repro", "-f", "-s", "txt2img@ddim", cwd=scratch_repo)  # its timings file is written anew
    assert {f: f.read_bytes() for f in images} == before and len(before) == 20  # the same images again
    assert json.loads(sh("dvc", "status", "--json", *targets, cwd=scratch_repo)) == {}
    assert "Running stage" not in sh("dvc", "repro", *targets, cwd=scratch_repo)


def queue_finished(repo: Path) -> bool:
    rows = sh("dvc", "queue", "status", cwd=repo).splitlines()[1:]
    return bool(rows) and not any(word in row for row in rows for word in ("Queued", "Running"))


@pytest.mark.slow
def test_a_queued_sweep_runs_in_parallel_and_exp_show_lists_it(scratch_repo: Path):
    import json
    import time

    edit_params(scratch_repo, lambda p: (p["prompts"].update(per_class=2), p["generate"].update(steps=4)))
    sh("git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qam", "small sweep base", cwd=scratch_repo)
    sh("dvc", "exp", "run", "--queue", "txt2img@ddim", "-S", "generate.guidance=1.0,3.0", cwd=scratch_repo)
    with open(scratch_repo.parent / "queue-start.log", "w") as log:  # a file: daemon workers would hold a pipe
        start = [sys.executable, "-m", "dvc", "queue", "start", "-j", "2"]
        subprocess.run(start, cwd=scratch_repo, stdout=log, stderr=log, check=True)
    deadline = time.time() + 900
    while time.time() < deadline and not queue_finished(scratch_repo):
        time.sleep(3)
    status = sh("dvc", "queue", "status", cwd=scratch_repo)
    sh("dvc", "queue", "stop", cwd=scratch_repo)
    assert status.count("Success") == 2, status + sh("dvc", "queue", "logs", status.split()[-5], cwd=scratch_repo)
    rows = json.loads(sh("dvc", "exp", "show", "--json", cwd=scratch_repo))
    exps = [e for row in rows for e in (row.get("experiments") or [])]
    guidance = sorted(
        run["data"]["params"]["params.yaml"]["data"]["generate"]["guidance"] for e in exps for run in e["revs"]
    )
    assert guidance == [1.0, 3.0]
    timing = Dag(scratch_repo).arg("txt2img@ddim", "--timings").relative_to(scratch_repo).as_posix()
    for e in exps:  # the timings file is git-tracked, so each experiment's commit holds its own
        images = json.loads(sh("git", "show", f"{e['revs'][0]['rev']}:{timing}", cwd=scratch_repo))["cls"]["images"]
        assert images == 20  # 2 per class, as each experiment's params said


@pytest.mark.slow
def test_a_team_shares_results_through_a_remote_and_repro_recomputes_nothing(scratch_repo: Path, tmp_path: Path):
    sh("dvc", "repro", "prompts", cwd=scratch_repo)  # prepare + prompts; dvc.lock already records them
    sh("dvc", "remote", "add", "-d", "shared", str(tmp_path / "remote"), cwd=scratch_repo)
    sh("dvc", "push", "--run-cache", "--with-deps", "prompts", cwd=scratch_repo)
    sh("git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qam", "remote", cwd=scratch_repo)
    mate = tmp_path / "teammate"
    sh("git", "clone", "-q", str(scratch_repo), str(mate), cwd=tmp_path)
    out = sh("dvc", "repro", "--pull", "prompts", cwd=mate)
    assert "Running stage" not in out, out  # everything came from the remote, nothing was recomputed
    prompts = Dag(scratch_repo).arg("prompts", "--out").relative_to(scratch_repo)
    assert (mate / prompts).read_bytes() == (scratch_repo / prompts).read_bytes()
    assert "up to date" in sh("dvc", "status", "prompts", cwd=mate)
