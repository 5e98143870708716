"""evaluate, quality, study, summarize and report on a tiny pipeline made by the real stages, the
assemble filter, the statistics, and the report in a real headless Chromium."""

from __future__ import annotations

import copy
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthaug import checksums
from synthaug.layout import Dataset, Real, Run, Source, Study
from tests.helpers import CLASSES, ROOT, Dag, error_lines, run_assemble, write_params

GIVEN = {"prepare", "pretrain", "judge"}  # made by the session fixtures, copied in


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, base_params, small_real, synthetic, tiny_judge) -> Dag:
    """A whole tiny study made by dvc.yaml's own stage commands, in dvc.yaml's order, in a folder laid
    out as dvc.yaml lays it out. Every stage but evaluate runs with the real test split moved away:
    none may read it."""
    root = tmp_path_factory.mktemp("tiny")
    p = copy.deepcopy(base_params)
    p["txt2img"]["schedulers"] = ["ddim"]
    p["img2img"].update(strengths=[0.5], variants_per_source=1)
    p["variants"] = {
        "baseline": {"source": "none", "ratio": 0.0, "seeds": {2: 3}},
        "ddim": {"source": "txt2img/ddim", "ratio": 1.0, "seeds": {2: 3}},  # a third seed at 2 shots
        "real_pool": {"source": "real/pool", "ratio": 1.0},
    }
    p["prompts"]["per_class"] = 3
    p["real_pool"]["per_class"] = 1
    p["trials"].update(shots=[1, 2], resnet_seeds=[0, 1], yolo_seeds=[0], yolo_variants=["baseline", "ddim"])
    p["train_resnet"].update(steps=4, batch_size=8, eval_every=2, warmup_steps=1)
    p["pretrain_yolo"].update(epochs=1, close_mosaic=0, batch=2, imgsz=64)
    p["train_yolo"].update(epochs=1, close_mosaic=0, imgsz=64, batch=4)
    p["generate"].update(steps=2, batch_size=30)
    p["study"].update(steps=[1, 2], per_class=2)
    p["report"]["gallery_per_class"] = 1
    write_params(root / "params.yaml", p)
    shutil.copy(ROOT / "dvc.yaml", root / "dvc.yaml")
    dag = Dag(root)
    shutil.copytree(small_real, dag.arg("prepare", "--out"))
    shutil.copytree(synthetic.parent.parent / "builtin", dag.arg("pretrain", "--out"))
    shutil.copytree(tiny_judge, dag.arg("judge", "--out"))
    hidden = root / "test_splits"
    real = dag.arg("prepare", "--out")
    test_split = [f.relative_to(real) for f in Real(real).folders("test")]  # evaluate's alone
    for split in test_split:
        (hidden / split).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(real / split, hidden / split)
    for stage in dag.commands:
        if stage in GIVEN:
            continue
        evaluating = stage.startswith("evaluate@")
        for split in test_split if evaluating else ():
            shutil.copytree(hidden / split, real / split)
        proc = dag.run(stage)
        assert proc.returncode == 0, f"{stage}: {proc.stderr[-3000:]}"
        for split in test_split if evaluating else ():
            shutil.rmtree(real / split)
    return dag


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_evaluate_reports_every_seed_on_the_test_split(tiny: Dag, small_real: Path):
    m = read(tiny.arg("evaluate@ddim", "--out"))
    assert list(m["resnet"]) == ["1shot", "2shot"]  # every regime
    assert [k for k in m["resnet"]["1shot"] if k.startswith("seed")] == ["seed0", "seed1"]  # trials.resnet_seeds
    assert [k for k in m["resnet"]["2shot"] if k.startswith("seed")] == ["seed0", "seed1", "seed2"]  # and its own
    for runs in m["resnet"].values():
        seeds = [runs[k] for k in runs if k.startswith("seed")]
        for s in seeds:
            assert 0 <= s["accuracy"] <= 1 and 0 <= s["macro_f1"] <= 1 and list(s["per_class_accuracy"]) == CLASSES
        assert runs["mean_accuracy"] == pytest.approx(np.mean([s["accuracy"] for s in seeds]), abs=1e-6)
    y = m["yolo"]["seed0"]
    assert 0 <= y["mAP50-95"] <= y["mAP50"] <= 1 and list(y["per_class_AP50"]) == CLASSES
    assert y["optimizer_steps"] == read(Run.of(tiny.arg("train_yolo@ddim", "--out"), 0).budget)["optimizer_steps"] == 2
    assert read(tiny.arg("evaluate@real_pool", "--out"))["yolo"] == {}  # not in trials.yolo_variants: no detector
    with open(tiny.arg("evaluate@ddim", "--confusion")) as fh:
        rows = list(csv.DictReader(fh))
    n_test = sum(1 for _ in Real(small_real).cls("test").rglob("*.png"))
    assert n_test == 20 != sum(1 for _ in Real(small_real).cls("val").rglob("*.png"))  # val would not fit
    assert len(rows) == 3 * n_test and {r["actual"] for r in rows} == set(CLASSES)  # the largest regime's seeds
    acc0 = np.mean([r["actual"] == r["predicted"] for r in rows if r["seed"] == "0"])
    assert acc0 == pytest.approx(seeds[0]["accuracy"], abs=1e-6)  # the plot and the metric agree


def test_quality_scores_synthetic_sources(tiny: Dag, tiny_judge: Path):
    import torch

    from synthaug.images import image_folder
    from synthaug.quality import frechet_distance, kernel_inception_distance
    from synthaug.reference import load_reference
    from synthaug.resnet import load_folder, load_images, load_trained, predict

    q = read(tiny.arg("quality_txt2img@ddim", "--out"))
    assert q["images"] == 30 and 0 <= q["cas"] <= 1
    assert "seconds_per_image" not in q and "box_survival" not in q  # seconds live in timings/, read by nothing
    assert read(tiny.arg("txt2img@ddim", "--timings"))["cls"]["seconds_per_image"] > 0
    # the judge's own verdicts on these 30 images, against the real *val* split's features
    judge, _ = load_trained(tiny_judge)
    files = image_folder(Source(tiny.arg("txt2img@ddim", "--out")).cls, CLASSES)
    probs, feats = predict(judge, load_images([f for f, _ in files], (32, 1)))
    labels = torch.tensor([k for _, k in files])
    assert q["conditional_accuracy"] == round(float((probs.argmax(1) == labels).float().mean()), 6)
    _, ref = predict(judge, load_folder(Real(tiny.arg("prepare", "--out")).cls("pool"), CLASSES)[0])
    assert torch.equal(load_reference(tiny.arg("reference", "--out"), judge), ref)  # stage reference's, bit for bit
    assert q["frechet_distance"] == round(frechet_distance(feats.numpy(), ref.numpy()), 4)  # against the pool
    assert (q["kid"], q["kid_std"]) == tuple(round(v, 6) for v in kernel_inception_distance(feats.numpy(), ref.numpy()))
    assert "box_survival" not in read(tiny.arg("quality_img2img@0.5", "--out"))
    i = read(tiny.arg("survival@0.5", "--out"))
    labels = list(Source(tiny.arg("survival@0.5", "--synthetic")).det_val.labels().glob("*.txt"))
    assert len(labels) == 2  # one img2img version of each real val canvas: held out from every detector
    assert i["box_survival_boxes"] == sum(len(f.read_text().splitlines()) for f in labels) > 0
    assert 0 <= i["box_survival"] <= 1 and 0 <= i["box_recall_real"] <= 1


def test_a_bad_reference_file_is_one_error_naming_it_and_the_fix(tmp_path, tiny_judge: Path):
    import torch
    from safetensors.torch import save_file

    from synthaug.errors import DataError
    from synthaug.reference import load_reference, save_reference
    from synthaug.resnet import load_trained

    judge, _ = load_trained(tiny_judge)
    good = tmp_path / "ref" / "pool.safetensors"
    save_reference(good, torch.arange(3 * 512, dtype=torch.float32).reshape(3, 512))
    assert load_reference(good, judge).shape == (3, 512) and [p.name for p in good.parent.iterdir()] == [good.name]
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    save_file({"features": torch.zeros(3, 64)}, tmp_path / "other.safetensors")  # another judge's width
    save_file({"weights": torch.zeros(3, 512)}, tmp_path / "nofeatures.safetensors")
    cases = {
        "missing.safetensors": "missing; compute the judge's reference features first (`dvc repro reference`)",
        "junk.safetensors": "not a safetensors file",
        "other.safetensors": "64 features per image, but the judge makes 512",
        "nofeatures.safetensors": "no 'features' tensor",
    }
    for name, message in cases.items():
        with pytest.raises(DataError, match=re.escape(message)) as err:
            load_reference(tmp_path / name, judge)
        assert str(err.value).startswith(str(tmp_path / name)) and "dvc repro" in str(err.value)


def test_study_uses_the_same_prompts_for_every_step_count(tiny: Dag):
    m = read(tiny.arg("study@ddim", "--metrics"))
    study = Study(tiny.arg("study@ddim", "--out"))
    assert m.pop("content_md5") == checksums.digest(study.root)  # the images, which the report depends on through it
    assert list(m) == ["steps_1", "steps_2"] and all(0 <= v["conditional_accuracy"] <= 1 for v in m.values())
    one, two = (sorted(str(f.relative_to(study.steps(s))) for f in study.steps(s).rglob("*.png")) for s in (1, 2))
    assert one == two and len(one) == 2 * len(CLASSES)
    a = np.asarray(Image.open(study.steps(1) / one[0]))
    b = np.asarray(Image.open(study.steps(2) / one[0]))
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_summary_means_intervals_and_paired_differences(tiny: Dag):
    from scipy import stats

    from synthaug.stats import holm

    s = read(tiny.arg("summarize", "--out"))
    base, ddim = read(tiny.arg("evaluate@baseline", "--out")), read(tiny.arg("evaluate@ddim", "--out"))
    assert list(s["regimes"]) == ["1shot", "2shot"] and s["headline"] == "2shot"
    for regime, seeds in (("1shot", (0, 1)), ("2shot", (0, 1, 2))):  # ddim and the baseline: 3 seeds at 2 shots
        ours = [ddim["resnet"][regime][f"seed{k}"]["accuracy"] for k in seeds]
        theirs = [base["resnet"][regime][f"seed{k}"]["accuracy"] for k in seeds]
        diffs, n = np.subtract(ours, theirs), len(seeds)
        row = s["regimes"][regime]["ddim"]["accuracy"]["diff_vs_baseline"]
        assert row["mean"] == pytest.approx(np.mean(diffs), abs=1e-6) and row["n"] == n
        assert row["ci95"] == pytest.approx(stats.t.ppf(0.975, n - 1) * np.std(diffs, ddof=1) / np.sqrt(n), abs=1e-6)
        expected = stats.ttest_rel(ours, theirs).pvalue if diffs.any() else 1.0
        assert row["p_value"] == pytest.approx(expected, abs=1e-6)  # identical results: no evidence of a difference
    # Holm over the verdict's family: accuracy in every regime (mAP50-95's one seed gives no p-value)
    family = {
        (r, v): s["regimes"][r][v]["accuracy"]["diff_vs_baseline"] for r in s["regimes"] for v in ("ddim", "real_pool")
    }
    assert s["families"]["verdict"] == 5  # 4 accuracy comparisons + ddim's mAP50-95
    expected = holm({k: d["p_value"] for k, d in family.items()})
    assert {k: d["p_holm"] for k, d in family.items()} == pytest.approx(expected, abs=1e-6)
    headline = s["regimes"]["2shot"]
    assert "diff_vs_real" in headline["ddim"]["accuracy"] and s["reference"] == "real_pool"
    assert headline["ddim"]["accuracy"]["diff_vs_real"]["n"] == 2  # on the seeds real_pool trains too
    assert headline["real_pool"]["accuracy"]["diff_vs_baseline"]["n"] == 2
    assert headline["ddim"]["mAP50"]["ci95"] is None  # one YOLO seed: no interval
    assert headline["ddim"]["mAP50"]["diff_vs_baseline"]["p_value"] is None
    assert "mAP50" not in headline["real_pool"] and "mAP50" not in s["regimes"]["1shot"]["ddim"]  # no detector
    assert s["budget"] == {"yolo_optimizer_steps": {"baseline": [1], "ddim": [2]}, "yolo_equal": False}
    assert "diff_vs_baseline" not in headline["baseline"]["accuracy"]
    # the exchange rate: ddim read off the curve baseline (0 extra) → real_pool (1 extra per class)
    for regime, e in s["exchange"].items():
        curve = [e["curve"][v]["mean"] for v in ("baseline", "real_pool")]
        assert [e["curve"][v]["real_per_class"] for v in ("baseline", "real_pool")] == [0, 1]
        worth = e["variants"]["ddim"]["real_per_class"]
        acc = np.mean([ddim["resnet"][regime][f"seed{k}"]["accuracy"] for k in (0, 1)])  # the seeds all variants have
        top = max(curve)
        assert worth == pytest.approx(
            0.0 if acc <= curve[0] else 1.0 if acc >= top else (acc - curve[0]) / (curve[1] - curve[0]), abs=1e-3
        )
        lo, hi = e["variants"]["ddim"]["ci95"]
        assert 0 <= lo <= hi <= 1
    assert set(s["quality"]) == {"txt2img/ddim", "img2img/0.5"} and "box_survival" in s["quality"]["img2img/0.5"]
    with open(tiny.arg("summarize", "--study-plot")) as fh:
        assert [(r["scheduler"], r["steps"]) for r in csv.DictReader(fh)] == [("ddim", "1"), ("ddim", "2")]


def test_worth_in_real_reads_the_real_curve():
    from synthaug.stats import worth_in_real

    xs, ys = [0, 5, 10, 30], np.array([0.5, 0.6, 0.58, 0.8])  # a dip: read on the running maximum
    assert worth_in_real(xs, ys, 0.4) == 0.0 and worth_in_real(xs, ys, 0.9) == 30.0  # clipped to the curve
    assert worth_in_real(xs, ys, 0.55) == pytest.approx(2.5)
    assert worth_in_real(xs, ys, 0.6) == pytest.approx(5.0)
    assert worth_in_real(xs, ys, 0.7) == pytest.approx(20.0)  # 0.6 → 0.8 between 10 and 30 (the dip is flat)


def test_holm_adjustment_values():
    from scipy import stats

    from synthaug.stats import holm, paired

    # Holm (1979): sorted p × (m, m-1, ...), made monotone, capped at 1
    assert holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": None}) == {"a": 0.03, "b": 0.06, "c": 0.06, "d": None}
    assert holm({"a": 0.5, "b": 0.6}) == {"a": 1.0, "b": 1.0}
    assert paired([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])["p_value"] == 1.0
    a, b = [0.93, 0.95, 0.94, 0.96], [0.91, 0.92, 0.94, 0.93]
    assert paired(a, b)["p_value"] == pytest.approx(stats.ttest_rel(a, b).pvalue, abs=1e-6)
    assert paired([0.5], [0.4]) == {"mean": 0.1, "ci95": None, "n": 1, "p_value": None}


def test_mean_ci_and_frechet_distance_values():
    from synthaug.quality import frechet_distance
    from synthaug.stats import mean_ci

    assert mean_ci([1.0, 2.0, 3.0]) == {"mean": 2.0, "ci95": pytest.approx(2.484138, abs=1e-6), "n": 3}
    assert mean_ci([0.5]) == {"mean": 0.5, "ci95": None, "n": 1}
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, a + np.array([2.0, 0, 0])) == pytest.approx(4.0, abs=1e-6)  # mean shift²


def test_assemble_filter_drops_low_confidence_images(tmp_path: Path, base_params, small_real, synthetic, tiny_judge):
    from synthaug.images import image_folder
    from synthaug.resnet import load_images, load_trained, predict

    files = image_folder(Source(synthetic).cls, CLASSES)
    probs, _ = predict(load_trained(tiny_judge)[0], load_images([f for f, _ in files]))
    conf = sorted(float(probs[i, k]) for i, (_, k) in enumerate(files))
    distinct = sorted(set(conf))
    threshold = (distinct[0] + distinct[1]) / 2  # drops exactly the least confident images
    drop = sum(c < threshold for c in conf)
    assert 0 < drop < len(conf)
    p = copy.deepcopy(base_params)
    p["filter"]["min_confidence"] = threshold
    proc = run_assemble(tmp_path, p, "ddim", small_real, synthetic, tiny_judge)
    assert proc.returncode == 0, proc.stderr
    f = read(tmp_path / "ddim.json")["filter"]
    keep = len(conf) - drop
    assert (f["kept"], f["dropped"], f["rejection_rate"]) == (keep, drop, pytest.approx(drop / len(conf), abs=1e-6))
    assert sum(c["kept"] for c in f["per_class"].values()) == keep
    assert sum(1 for _ in Dataset(tmp_path / "ddim").cls("synthetic").rglob("*.png")) == keep
    p["filter"]["min_confidence"] = 1.0
    shutil.rmtree(tmp_path / "ddim")
    proc = run_assemble(tmp_path, p, "ddim", small_real, synthetic, tiny_judge)
    assert proc.returncode == 1 and "lower filter.min_confidence" in error_lines(proc)[0]
    assert not (tmp_path / "ddim").exists()


def test_report_markdown_quotes_the_summary(tiny: Dag):
    md = tiny.arg("report", "--markdown").read_text()
    s = read(tiny.arg("summarize", "--out"))
    for regime in ("1shot", "2shot"):  # a table per regime, in order
        acc = s["regimes"][regime]["ddim"]["accuracy"]
        assert f"| ddim | {acc['mean']:.3f} ± {acc['ci95']:.3f} |" in md.split(f"**{regime[0]} real images")[1]
        n = acc["diff_vs_baseline"]["n"]  # the seeds each difference pairs: 3 at 2 shots, 2 at 1
        assert f"p_Holm {acc['diff_vs_baseline']['p_holm']:.3f}, {n} seeds |" in md and n == int(regime[0]) + 1
    assert "| ddim | 1 |" in md
    assert "Warning: the detectors took different numbers of optimiser steps" in md  # 1 vs 2: epochs=1 cannot halve
    for shots in (1, 2):
        assert re.search(rf"ResNet accuracy at {shots} real images? per class: .*(beats? the baseline|undecided)", md)
    assert "Holm's adjustment runs over the 5 comparisons above together" in md
    worth = s["exchange"]["1shot"]["variants"]["ddim"]
    assert f"ddim ≈ {'≥ ' if worth['at_curve_end'] else ''}{worth['real_per_class']:.1f} [" in md
    for flag in ("--study-png", "--shots-png", "--exchange-png"):
        assert Image.open(tiny.arg("report", flag)).size[0] > 500


def test_report_is_self_contained(tiny: Dag):
    page = tiny.arg("report", "--out").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)  # nothing fetched from a network
    assert "<script" not in page and page.count('src="data:image/png;base64,') >= 10
    for anchor in (
        'id="results-1shot"',
        'id="results-2shot"',
        'alt="accuracy against real shots"',
        'alt="exchange rate"',
        'id="quality"',
        'id="study"',
        'id="study-plot"',
        "class='gallery'",
        'id="provenance"',
    ):
        assert anchor.replace("'", '"') in page.replace("'", '"')


CHECK = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const visible = sel => [...document.querySelectorAll(sel)]
    .filter(e => e.offsetHeight > 0 && e.offsetWidth > 0).length;
  const out = {images: imgs.length, broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length,
               results_rows: document.querySelectorAll('table.results tbody tr').length,
               galleries: visible('.gallery'), tables: visible('table')};
  const pre = document.createElement('pre'); pre.id = 'check'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def chromium(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "chromium is missing: `make test` installs Debian's chromium (apt-get install chromium)"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
    ]
    return subprocess.run([exe, *flags, *args], capture_output=True, text=True, timeout=180)


def test_report_renders_in_headless_chromium(tiny: Dag, tmp_path: Path):
    page = tiny.arg("report", "--out").read_text()
    probe = tmp_path / "probe.html"  # the report plus a load-time check, so the DOM dump carries the verdict
    probe.write_text(page.replace("</body>", CHECK + "</body>"))
    proc = chromium("--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="check">(.*?)</pre>', proc.stdout)
    assert found, proc.stderr[-2000:]
    check = json.loads(found.group(1))
    assert check["broken"] == 0 and check["images"] >= 8
    assert check["results_rows"] == 2 * 3 and check["galleries"] == 3  # 2 regimes × 3 variants and check["tables"] >= 6
    shot = tmp_path / "report.png"
    proc = chromium(f"--screenshot={shot}", "--window-size=1280,2400", tiny.arg("report", "--out").as_uri())
    assert shot.is_file(), proc.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (2400, 1280) and pixels.std() > 10  # something was drawn, not a blank page


@pytest.mark.slow
def test_dvc_plots_show_renders_offline(tmp_path: Path):
    """`dvc plots show` uses the repo's vendored template: vega draws in a browser with no network."""
    data = tmp_path / "history.csv"
    data.write_text("step,val_accuracy\n1,0.5\n2,0.7\n3,0.8\n")
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "dvc"),
            "plots",
            "show",
            str(data),
            "-x",
            "step",
            "-y",
            "val_accuracy",
            "-o",
            str(tmp_path / "plots"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "plots" / "index.html").read_text()
    assert "cdn.jsdelivr" not in page and not re.search(r"<script[^>]+src=", page)
    dom = chromium("--virtual-time-budget=10000", "--dump-dom", (tmp_path / "plots" / "index.html").as_uri()).stdout
    assert re.search(r'<canvas[^>]*class="marks"', dom), dom[-2000:]  # vega-embed drew the chart


KILLED_MID_WRITE = """
import resource, runpy, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it; a write past the limit now kills the process
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY))
sys.argv = sys.argv[2:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("module, limit", [("summarize", 100), ("summarize", 2000), ("report", 100), ("report", 60000)])
def test_a_stage_killed_mid_write_leaves_no_half_written_output(tiny: Dag, tmp_path: Path, module: str, limit: int):
    """The kernel kills the stage (SIGXFSZ) the moment any file it writes passes ``limit`` bytes, i.e.
    in the middle of writing an output: every output is then absent or whole, never cut short. The
    stage runs its dvc.yaml command from the stage module on (not through the warm runner: the limit
    is set in the very process that writes) with the outputs redirected to a scratch folder."""
    words = tiny.commands[module].split()
    words = words[words.index(f"stages.{module}") :]  # the stage itself: the rlimit must bind its own process
    flags = {
        "summarize": ("--out", "--study-plot"),
        "report": ("--out", "--markdown", "--study-png", "--shots-png", "--exchange-png"),
    }[module]
    outs = [tmp_path / tiny.arg(module, flag).name for flag in flags]
    for flag, out in zip(flags, outs):
        words[words.index(flag) + 1] = str(out)
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_MID_WRITE, str(limit), *words],
        cwd=tiny.root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == -signal.SIGXFSZ, proc.stderr[-2000:]  # it really died writing
    whole = {
        ".json": json.loads,
        ".csv": lambda t: t.endswith("\r\n") and all(None not in r.values() for r in csv.DictReader(t.splitlines())),
        ".md": lambda t: t.endswith("\n") or None,
        ".html": lambda t: t.rstrip().endswith("</html>") or None,
    }
    for out in outs:
        if out.exists() and out.suffix == ".png":
            Image.open(out).load()  # a cut PNG fails to decode
        elif out.exists():
            assert whole[out.suffix](out.read_text()), f"{out.name} is cut short"
