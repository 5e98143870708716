"""Scheduler registry, the generic sampling loop, and the text-conditioned (Stable Diffusion) path
on tiny random models built locally."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synthaug import registry
from synthaug.diffusion import SCHEDULERS, BuiltinModel, DiffusersBackend, Sampling, load_backend, make_scheduler
from synthaug.errors import ModelError
from tests.tiny_models import tiny_builtin, tiny_stable_diffusion

CLASSES = ["zero", "one", "two"]


@pytest.fixture(scope="module")
def builtin(tmp_path_factory) -> BuiltinModel:
    return load_backend("builtin", tiny_builtin(tmp_path_factory.mktemp("m") / "builtin", CLASSES))


@pytest.fixture(scope="module")
def sd(tmp_path_factory) -> DiffusersBackend:
    folder = tiny_stable_diffusion(tmp_path_factory.mktemp("sd") / "tiny-sd")
    return load_backend(str(folder), Path("unused"), offline=True)


def records(n: int, start_seed: int = 0) -> list[dict]:
    return [
        {
            "class": i % 3,
            "prompt": f"a photo of the digit {CLASSES[i % 3]}",
            "negative_prompt": "blurry",
            "seed": start_seed + i,
        }
        for i in range(n)
    ]


def test_registry_covers_the_classic_schedulers():
    assert set(registry.SCHEDULERS) >= {"ddim", "pndm", "ddpm", "euler", "euler_a", "lms", "heun", "dpmpp", "unipc"}
    assert SCHEDULERS["dpmpp"].__name__ == "DPMSolverMultistepScheduler"


def test_make_scheduler_applies_options_and_rejects_bad_ones(builtin):
    s, step = make_scheduler("dpmpp", builtin.scheduler_config, {"solver_order": 3})
    assert s.config.solver_order == 3 and s.config.num_train_timesteps == 1000 and step == {}
    s, step = make_scheduler("ddim", builtin.scheduler_config, {"eta": 0.5})
    assert type(s).__name__ == "DDIMScheduler" and step == {"eta": 0.5}
    with pytest.raises(ModelError, match=r"unknown scheduler 'dddim' \(known: ddim, "):
        make_scheduler("dddim", builtin.scheduler_config, {})
    with pytest.raises(ModelError, match="has no option 'solver_ordr'"):
        make_scheduler("dpmpp", builtin.scheduler_config, {"solver_ordr": 2})
    with pytest.raises(ModelError, match="has no step option 'eta'"):
        make_scheduler("euler", builtin.scheduler_config, {"eta": 1.0})


@pytest.mark.parametrize("name", list(registry.SCHEDULERS))
def test_every_scheduler_samples_deterministically(builtin, base_params, name):
    recs = records(3)
    options = base_params["schedulers"][name]  # the options params.yaml ships with
    a = builtin.txt2img(recs, Sampling.of(name, builtin.scheduler_config, options, 3, 2.0))
    b = builtin.txt2img(recs, Sampling.of(name, builtin.scheduler_config, options, 3, 2.0))  # a fresh scheduler
    assert a.shape == (3, 32, 32) and a.dtype == np.uint8 and a.std() > 0
    np.testing.assert_array_equal(a, b)
    c = builtin.txt2img(records(3, start_seed=100), Sampling.of(name, builtin.scheduler_config, options, 3, 2.0))
    assert not np.array_equal(a, c)


def test_image_depends_on_its_seed_not_its_batch_position(builtin):
    recs = records(4)

    def euler_a() -> Sampling:  # ancestral: noise at every step
        return Sampling.of("euler_a", builtin.scheduler_config, {}, 4, 2.0)

    together = builtin.txt2img(recs, euler_a())
    reversed_ = builtin.txt2img(recs[::-1], euler_a())[::-1]
    alone = builtin.txt2img(recs[2:3], euler_a())
    assert np.abs(together.astype(int) - reversed_.astype(int)).max() <= 1
    assert np.abs(together[2].astype(int) - alone[0].astype(int)).max() <= 1


def test_img2img_strength_controls_departure_from_source(builtin):
    recs = records(2)
    source = np.zeros((2, 32, 32), np.uint8)
    source[:, 8:24, 14:18] = 255
    dist = {}
    for strength in (0.05, 1.0):
        ddim = [Sampling.of("ddim", builtin.scheduler_config, {}, 20, 2.0, strength=strength) for _ in range(2)]
        out = builtin.img2img(source, recs, ddim[0])
        assert np.array_equal(out, builtin.img2img(source, recs, ddim[1]))  # deterministic
        dist[strength] = np.abs(out.astype(float) - source).mean()
    assert dist[0.05] < dist[1.0]


def test_every_denoising_step_is_reported_and_can_stop_sampling(builtin, sd):
    for backend, strength, expected in ((builtin, 1.0, 6), (builtin, 0.5, 3), (sd, 1.0, 6), (sd, 0.5, 3)):
        seen: list[tuple[int, int]] = []
        config = backend.scheduler_config
        sampling = Sampling.of("ddim", config, {}, 6, 2.0, strength=strength, on_step=lambda *a, s=seen: s.append(a))
        if strength == 1.0:
            backend.txt2img(records(1), sampling)
        else:
            size = backend.image_size
            source = np.zeros((1, size, size) + (() if backend.channels == 1 else (3,)), np.uint8)
            backend.img2img(source, records(1), sampling)
        assert seen == [(i, expected) for i in range(1, expected + 1)], (backend, strength)

    def stop(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        builtin.txt2img(records(1), Sampling.of("ddim", builtin.scheduler_config, {}, 6, 2.0, on_step=stop))


def test_tiny_stable_diffusion_txt2img_img2img_and_scheduler_swap(sd):
    assert sd.text_conditioned and sd.image_size == 64
    recs = records(2)

    def sampling(name: str, options: dict, steps: int = 2, **kw) -> Sampling:
        return Sampling.of(name, sd.scheduler_config, options, steps, 5.0, **kw)

    ddim = sd.txt2img(recs, sampling("ddim", {"eta": 0.0}))
    assert ddim.shape == (2, 64, 64, 3) and ddim.dtype == np.uint8 and ddim.std() > 0
    np.testing.assert_array_equal(ddim, sd.txt2img(recs, sampling("ddim", {"eta": 0.0})))
    euler = sd.txt2img(recs, sampling("euler", {}))
    assert type(sd.pipe.scheduler).__name__ == "EulerDiscreteScheduler" and not np.array_equal(ddim, euler)
    prompts_differ = sd.txt2img([dict(recs[0], prompt="one two three")] + recs[1:], sampling("ddim", {}))
    assert not np.array_equal(prompts_differ[0], ddim[0]) and np.array_equal(prompts_differ[1], ddim[1])
    outs = {}
    for strength in (0.3, 0.9):
        outs[strength] = sd.img2img(ddim, recs, sampling("ddim", {}, 10, strength=strength))
        assert outs[strength].shape == (2, 64, 64, 3)
    assert not np.array_equal(outs[0.3], outs[0.9])


def test_load_backend_errors(tmp_path: Path):
    with pytest.raises(ModelError, match="builtin model is missing; run `dvc repro pretrain`"):
        load_backend("builtin", tmp_path / "nope")
    with pytest.raises(ModelError, match="model not found"):
        load_backend("./models/nope", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no model_index.json"):
        load_backend(str(tmp_path / "empty"), tmp_path)
    with pytest.raises(ModelError, match="generate.offline is true"):
        load_backend("nobody/no-such-model", tmp_path, offline=True)


def test_a_model_that_cannot_do_txt2img_is_refused(tmp_path: Path):
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    unet = UNet2DModel(
        sample_size=8,
        in_channels=3,
        out_channels=3,
        block_out_channels=(16, 32),
        down_block_types=("DownBlock2D",) * 2,
        up_block_types=("UpBlock2D",) * 2,
        norm_num_groups=16,
    )
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler()).save_pretrained(tmp_path / "uncond")
    with pytest.raises(ModelError, match="not a text-to-image checkpoint"):
        load_backend(str(tmp_path / "uncond"), tmp_path)
