"""The ``parameters`` chunk both ways, by AUTOMATIC1111's rules: chunks as A1111 writes them (multi-line
prompts, Schedule type, pre-1.9 sampler names, JSON-quoted values) read into the right values, and
what synthaug writes read back to what made it."""

from __future__ import annotations

import tomllib

import pytest

from synthaug.errors import DataError
from synthaug.infotext import parse, quote, schedule_type, sd_parameters, with_settings
from synthaug.version import VERSION
from tests.helpers import ROOT

# As A1111 1.9+ writes it: a prompt and a negative prompt on several lines, a quoted model name.
A1111 = """masterpiece, a red fox
in the snow, (detailed fur:1.2)
Negative prompt: blurry, lowres
bad anatomy,
watermark
Steps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 3452345, Size: 512x768, \
Model hash: 6ce0161689, Model: "v1-5, pruned", Clip skip: 2, Version: v1.9.4"""

# Before 1.9 the schedule was part of the sampler name.
LEGACY = """a lighthouse at dusk
Negative prompt: people
Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1, Size: 512x512, Model: sd15"""


def test_an_a1111_chunk_reads_into_the_right_values():
    v = parse(A1111)
    assert v["prompt"] == "masterpiece, a red fox\nin the snow, (detailed fur:1.2)"
    assert v["negative_prompt"] == "blurry, lowres\nbad anatomy,\nwatermark"  # newlines kept, none lost to the prompt
    assert (v["steps"], v["scheduler"], v["guidance"], v["seed"]) == (30, "dpmpp", 6.5, 3452345)
    assert v["options"] == {"use_karras_sigmas": True}  # Schedule type: Karras, as diffusers spells it
    assert (v["width"], v["height"]) == (512, 768)
    assert v["model"] == "v1-5, pruned" and v["model_hash"] == "6ce0161689"  # unquoted
    assert v["version"] == "v1.9.4"
    assert v["not_applied"] == {"Clip skip": "2"}  # kept and listed, never dropped silently


def test_a_legacy_karras_sampler_name_maps_to_its_scheduler_options():
    v = parse(LEGACY)
    assert v["scheduler"] == "dpmpp" and v["options"] == {"use_karras_sigmas": True}
    assert v["prompt"] == "a lighthouse at dusk" and v["negative_prompt"] == "people"
    exponential = parse(LEGACY.replace("DPM++ 2M Karras", "Euler Exponential"))
    assert exponential["scheduler"] == "euler" and exponential["options"] == {"use_exponential_sigmas": True}
    assert parse(LEGACY.replace("DPM++ 2M Karras", "DDIM"))["options"] == {}


def test_automatic_means_karras_for_dpmpp_since_a1111_1_9_and_not_before():
    modern = LEGACY.replace("DPM++ 2M Karras", "DPM++ 2M") + ", Version: v1.10.1"
    assert parse(modern)["options"] == {"use_karras_sigmas": True}
    assert parse(modern.replace("Sampler: DPM++ 2M", "Sampler: DPM++ 2M, Schedule type: Automatic"))["options"] == {
        "use_karras_sigmas": True
    }
    assert parse(LEGACY.replace("DPM++ 2M Karras", "DPM++ 2M"))["options"] == {}  # pre-1.9: no Version
    assert parse(modern.replace("Sampler: DPM++ 2M", "Sampler: DPM++ 2M, Schedule type: Uniform"))["options"] == {}
    # so synthaug names diffusers' default spacing for DPM++ 2M "Uniform", which A1111 reads back the same
    plain = sd_parameters({"prompt": "a", "seed": 1}, "DPM++ 2M", 5, 2.0, (32, 32), "m", options={})
    assert "Schedule type: Uniform" in plain and parse(plain)["options"] == {}


def test_a_schedule_type_diffusers_has_no_option_for_is_listed_not_applied():
    v = parse(LEGACY.replace("Sampler: DPM++ 2M Karras", "Sampler: Euler, Schedule type: Align Your Steps"))
    assert v["options"] == {} and v["not_applied"] == {"Schedule type": "Align Your Steps"}


def test_a_sampler_without_a_scheduler_here_is_one_clear_message():
    with pytest.raises(DataError, match=r"sampler 'DPM\+\+ 2S a' has no scheduler here \(known: DDIM, PLMS"):
        parse(LEGACY.replace("DPM++ 2M Karras", "DPM++ 2S a"))


def test_text_without_a_settings_line_is_not_a_chunk():
    """A1111's rule: the last line holds settings only with at least 3 ``key: value`` pairs."""
    with pytest.raises(DataError, match="not a parameters chunk"):
        parse("a cat\nstyle: oil, mood: calm")
    with pytest.raises(DataError, match="no 'Seed' setting"):
        parse("a cat\nSteps: 20, Sampler: Euler, CFG scale: 7, Size: 64x64")


def test_what_synthaug_writes_reads_back_to_what_made_it():
    record = {"prompt": "two\nlines", "negative_prompt": "", "seed": 42}
    options = {"use_karras_sigmas": True, "eta": 0.5}
    text = sd_parameters(
        record, "DPM++ 2M", 12, 3.0, (64, 48), "my, model", 0.4, options=options, model_hash="0123456789"
    )
    assert "Negative prompt" not in text  # an empty negative prompt is omitted, as A1111 does
    last = text.splitlines()[-1]
    assert last.startswith("Steps: 12, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 3, Seed: 42, ")
    assert 'Model hash: 0123456789, Model: "my, model", Denoising strength: 0.4, Eta: 0.5' in last
    assert last.endswith(f"Version: synthaug {VERSION}")
    v = parse(text)
    assert {k: v[k] for k in ("prompt", "negative_prompt", "steps", "scheduler", "guidance", "seed")} == {
        "prompt": "two\nlines",
        "negative_prompt": "",
        "steps": 12,
        "scheduler": "dpmpp",
        "guidance": 3.0,
        "seed": 42,
    }
    assert v["options"] == options and v["strength"] == 0.4 and v["model"] == "my, model"
    assert (v["width"], v["height"], v["model_hash"], v["not_applied"]) == (64, 48, "0123456789", {})


def test_a_grid_chunk_carries_its_axes():
    cell = sd_parameters({"prompt": "a", "negative_prompt": "b", "seed": 1}, "DDIM", 5, 2.0, (32, 32), "m")
    grid = with_settings(cell, {"Script": "X/Y plot", "X Type": "steps", "X Values": "5, 10"})
    assert grid.endswith(f'Script: X/Y plot, X Type: steps, X Values: "5, 10", Version: synthaug {VERSION}')
    assert parse(grid)["not_applied"] == {"Script": "X/Y plot", "X Type": "steps", "X Values": "5, 10"}


def test_quoting_and_schedule_types_follow_a1111():
    assert quote("plain") == "plain" and quote("a, b") == '"a, b"' and quote('say "hi": now') == '"say \\"hi\\": now"'
    assert schedule_type({}) == "Automatic" and schedule_type({"use_karras_sigmas": False}) == "Automatic"
    assert schedule_type({"use_exponential_sigmas": True}) == "Exponential"


def test_the_version_chunks_write_is_the_packages():
    assert VERSION == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
