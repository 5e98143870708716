from pathlib import Path

import pytest

from synthaug.params import ParamsError, load_params, parse_params, resnet_seeds
from tests.helpers import ROOT, run_module, write_params


def test_repo_params_are_valid():
    p = load_params(ROOT / "params.yaml")
    assert p.data.source == "embedded"
    assert 10 <= p.prepare.shots_per_class <= 20
    assert p.prepare.pool_per_class * 10 >= 2500 and p.prepare.test_per_class * 10 >= 1000
    assert isinstance(p.prepare.det.backgrounds, tuple)


def test_a_variant_trains_more_seeds_where_it_asks(params):
    params["trials"]["resnet_seeds"] = [3, 7]
    params["variants"]["baseline"]["seeds"] = {"16": 5}  # as `dvc exp run -S variants.baseline.seeds.16=5` writes it
    params["variants"]["ddim"]["seeds"] = {16: 4}
    del params["variants"]["i2i_40"]["seeds"]
    p = parse_params(params)
    assert resnet_seeds(p, "baseline", 16) == (3, 7, 8, 9, 10)  # trials.resnet_seeds, then the next integers
    assert resnet_seeds(p, "ddim", 16) == (3, 7, 8, 9) and resnet_seeds(p, "ddim", 4) == (3, 7)


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda p: p["prepare"].update(shot_per_class=p["prepare"].pop("shots_per_class")),
            "prepare.shot_per_class: unknown key; did you mean 'shots_per_class'?",
        ),
        (lambda p: p["prepare"].update(shots_per_class="16"), "prepare.shots_per_class: expected int, got str '16'"),
        (lambda p: p["prepare"].update(shots_per_class=1.5), "prepare.shots_per_class: expected int"),
        (lambda p: p["prepare"].update(shots_per_class=True), "prepare.shots_per_class: expected int, got bool"),
        (
            lambda p: p["prepare"].update(shots_per_class=0),
            "prepare.shots_per_class: 0 is out of range; it must be >= 1",
        ),
        (lambda p: p["prepare"]["det"].update(max_iou=2), "prepare.det.max_iou: 2.0 is out of range; it must be <= 1"),
        (lambda p: p["data"].update(source="embeded"), "did you mean 'embedded'?"),
        (lambda p: p["data"].update(channels=2), "data.channels: 2 is not one of 1, 3"),
        (lambda p: p["prepare"]["det"].update(backgrounds="grass"), "prepare.det.backgrounds: expected a list"),
        (lambda p: p["prepare"].pop("val_per_class"), "prepare.val_per_class: missing key"),
        (lambda p: p["generate"].update(device="gpu"), "generate.device: 'gpu' is not a torch device"),
        (lambda p: p["generate"].update(dtype="fp16"), "generate.dtype: 'fp16' is not one of"),
        (lambda p: p["generate"].update(size=64), "generate.size: 64 — the builtin model samples at data.image_size"),
        (
            lambda p: p["generate"].update(model="./sd-1-5", size=500),
            "generate.size: 500 is not a multiple of 8 (Stable Diffusion's VAE halves the side 3 times); "
            "use 496 or 504",
        ),
        (
            lambda p: p["txt2img"].update(schedulers=["ddim", "unipcc"]),
            "txt2img.schedulers[1]: 'unipcc' has no section under schedulers; did you mean 'unipc'?",
        ),
        (lambda p: p["img2img"].update(scheduler="dpm"), "img2img.scheduler: unknown scheduler 'dpm'"),
        (
            lambda p: p["generate"].update(steps=2),  # int(2 × 0.4) = 0: SDEdit would denoise nothing
            "img2img.strengths[0]: 0.4 × generate.steps (2) leaves no denoising step (img2img takes "
            "int(steps × strength)); raise generate.steps to at least 3 or the strength",
        ),
        (lambda p: p["trials"].update(resnet_seeds=[0, 0]), "trials.resnet_seeds: [0, 0] must be distinct seeds"),
        (lambda p: p["trials"].update(yolo_seeds=[]), "trials.yolo_seeds: [] must be distinct seeds"),
        (lambda p: p["trials"].update(shots=[4, 1]), "trials.shots: [4, 1] must be increasing shot counts"),
        (
            lambda p: p["trials"].update(shots=[1, 4, 32]),
            "trials.shots: 32 shots is more than the train split holds (prepare.shots_per_class: 16)",
        ),
        (
            lambda p: p["variants"]["ddim"].update(shots=[2]),
            "variants.ddim.shots: [2] must be some of trials.shots ([1, 4, 16]), at least one",
        ),
        (
            lambda p: p["variants"]["baseline"].update(shots=[4]),
            "variants.baseline.shots: the baseline trains in every",
        ),
        (
            lambda p: p["variants"]["ddim"].update(per_class=40),
            "variants.ddim.per_class: 40 is more than txt2img/ddim makes per class (30); lower it",
        ),
        (lambda p: p["variants"]["baseline"].update(per_class=4), "variants.baseline.per_class: 4, but source is none"),
        (
            lambda p: p["variants"]["real_pool"].update(seeds={16: 60}),
            "variants.real_pool.seeds.16: 60 seeds, but the baseline trains 48 at 16 shots and a run is compared "
            "with the baseline's of the same seed; set variants.baseline.seeds.16 to at least 60",
        ),
        (
            lambda p: p["variants"]["real_pool_5"].update(seeds={16: 8}),
            "variants.real_pool_5.seeds.16: 16 shots is not a regime real_pool_5 trains in ([4]); remove it",
        ),
        (
            lambda p: p["variants"]["ddim"].update(seeds={4: 3}),
            "variants.ddim.seeds.4: 3 seeds is fewer than trials.resnet_seeds (6), which every variant trains; "
            "raise it to at least 6 or remove it",
        ),
        (lambda p: p["variants"]["ddim"].update(seeds={"x": 8}), "variants.ddim.seeds.x: keys here are whole numbers"),
        (lambda p: p["prompts"].update(templates=["a photo of a digit"]), "must contain '{name}'"),
        (lambda p: p.update(sed=1), "sed: unknown key; did you mean 'seed'?"),
        (
            lambda p: p["prepare"]["det"].update(min_object_size=0.5, max_object_size=0.3),
            "prepare.det.min_object_size: 0.5 is larger than prepare.det.max_object_size",
        ),
    ],
)
def test_bad_params_are_rejected_with_the_key(params, edit, message):
    edit(params)
    with pytest.raises(ParamsError) as err:
        parse_params(params)
    assert message in str(err.value)


@pytest.mark.slow
def test_cli_reports_one_line_and_writes_nothing(params, tmp_path: Path):
    params["prepare"]["shot_per_class"] = params["prepare"].pop("shots_per_class")
    out = tmp_path / "real"
    proc = run_module(
        "stages.prepare",
        "--params",
        str(write_params(tmp_path / "p.yaml", params)),
        "--user-cls",
        str(tmp_path / "none"),
        "--user-det",
        str(tmp_path / "none.yaml"),
        "--out",
        str(out),
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "did you mean 'shots_per_class'?" in proc.stderr and str(tmp_path / "p.yaml") in proc.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == [tmp_path / "p.yaml"]
