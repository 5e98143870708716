"""Scale-out on real launchers: txt2img and img2img sharded over 2 CPU processes by accelerate are
byte-identical to one process (at the same torch threads per process, which params fix);
train_resnet trains under DDP (gloo) with torchrun; the launcher's params are validated."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from synthaug.launch import command
from synthaug.params import LaunchParams, ParamsError, parse_params
from tests.helpers import CLASSES, error_lines, run_module, tree_digest, write_params
from tests.tiny_models import tiny_builtin


@pytest.fixture(scope="module")
def builtin_dir(tmp_path_factory) -> Path:
    return tiny_builtin(tmp_path_factory.mktemp("model") / "builtin", CLASSES)


def launched(section: str, module: str, *args: object):
    return run_module("synthaug.launch", section, module, *map(str, args))


def test_sampling_over_two_processes_is_byte_identical_to_one(tmp_path: Path, params, builtin_dir, small_real):
    params["prompts"]["per_class"] = 3
    params["generate"].update(batch_size=4, steps=3)  # 8 txt2img batches, the last one short
    params["img2img"]["variants_per_source"] = 2
    (tmp_path / "classes.json").write_text(json.dumps(CLASSES))
    one = write_params(tmp_path / "one.yaml", params)
    params["launch"]["sampling"].update(launcher="accelerate", processes=2)  # threads per process stay 2
    two = write_params(tmp_path / "two.yaml", params)
    proc = run_module(
        "stages.prompts",
        "--params",
        str(one),
        "--classes",
        str(tmp_path / "classes.json"),
        "--out",
        str(tmp_path / "prompts.jsonl"),
    )
    assert proc.returncode == 0, proc.stderr
    for name, p in (("one", one), ("two", two)):
        proc = launched(
            "sampling",
            "stages.txt2img",
            "--params",
            p,
            "--scheduler",
            "dpmpp",
            "--prompts",
            tmp_path / "prompts.jsonl",
            "--builtin",
            builtin_dir,
            "--out",
            tmp_path / name / "t2i",
            "--timings",
            tmp_path / name / "t2i.json",
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        proc = launched(
            "sampling",
            "stages.img2img",
            "--params",
            p,
            "--strength",
            "0.6",
            "--real",
            small_real,
            "--builtin",
            builtin_dir,
            "--out",
            tmp_path / name / "i2i",
            "--timings",
            tmp_path / name / "i2i.json",
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    # both processes worked: each drew its own progress share, and the main one merged the parts
    assert "[2/2]" not in proc.stderr and re.search(r"img2img@0.6 cls \[1/2\]", proc.stderr)
    for part in ("t2i", "i2i"):
        a, b = tree_digest(tmp_path / "one" / part), tree_digest(tmp_path / "two" / part)
        assert len(a) >= 30 and a == b, f"{part}: the two-process output differs"
        assert not (tmp_path / "two" / part / ".resume").exists()
    assert json.loads((tmp_path / "one" / "t2i.json").read_text())["processes"] == 1
    timing = json.loads((tmp_path / "two" / "i2i.json").read_text())
    assert timing["processes"] == 2 and timing["cls"]["images"] == 40 and timing["det"]["images"] == 6


def test_resnet_trains_under_ddp_on_two_cpu_processes(tmp_path: Path, params, small_real):
    params["variants"] = {"baseline": {"source": "none", "ratio": 0.0}}
    params["trials"].update(yolo_variants=["baseline"], resnet_seeds=[0], shots=[2])  # small_real's whole train set
    params["train_resnet"].update(steps=12, batch_size=8, eval_every=3, warmup_steps=1, lr=0.02, max_shift=0)
    params["launch"]["training"] = {"launcher": "torchrun", "processes": 2, "threads": 1}
    params["launch"]["runs"]["workers"] = 1  # each run is already spread over the processes
    p = write_params(tmp_path / "params.yaml", params)
    data = tmp_path / "data"
    data.mkdir()
    (data / "classes.json").write_text((small_real / "classes.json").read_text())
    (data / "cls").symlink_to(small_real / "cls")
    out, history = tmp_path / "models" / "baseline", tmp_path / "plots" / "baseline"
    proc = launched(
        "training",
        "stages.train_resnet",
        "--params",
        p,
        "--variant",
        "baseline",
        "--data",
        data,
        "--out",
        out,
        "--history",
        history,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "DDP over 2 processes" in proc.stderr
    assert proc.stderr.count("wrote " + str(out / "2shot" / "seed0")) == 1  # the main process alone saves
    assert sorted(f.name for f in (out / "2shot").iterdir()) == ["seed0"]  # nothing half-written beside it
    assert sorted(f.name for f in (out / "2shot" / "seed0").iterdir()) == ["config.json", "model.safetensors"]
    losses = [float(line.split(",")[1]) for line in (history / "2shot" / "seed0.csv").read_text().splitlines()[1:]]
    assert len(losses) == 4 and losses[-1] < losses[0], f"the loss did not fall: {losses}"
    # the same params run as one process: the stage refuses, since processes is a param of the result
    proc = run_module(
        "stages.train_resnet",
        "--params",
        str(p),
        "--variant",
        "baseline",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "single"),
        "--history",
        str(tmp_path / "single-history"),
    )
    assert proc.returncode == 1 and "launch.training.processes is 2 but 1 processes run" in error_lines(proc)[0]
    assert not (tmp_path / "single").exists()


def test_global_batch_must_split_over_processes(params):
    params["train_resnet"]["batch_size"] = 9
    params["launch"]["training"] = {"launcher": "accelerate", "processes": 2, "threads": 1}
    params["launch"]["runs"]["workers"] = 1
    with pytest.raises(
        ParamsError,
        match=r"train_resnet.batch_size: 9 is the global batch and does not split over "
        r"launch.training.processes \(2\); make it a multiple of 2",
    ):
        parse_params(params)


def test_launcher_command_lines():
    args = ["--params", "params.yaml"]
    one = command(LaunchParams("python", 1, 2), "stages.txt2img", args)
    assert one[1:] == ["-m", "synthaug.warm", "stages.txt2img", *args]  # forked from a warm server
    torchrun = command(LaunchParams("torchrun", 8, 2), "stages.train_resnet", args)
    assert torchrun[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=8", "-m"]
    acc = command(LaunchParams("accelerate", 4, 2), "stages.txt2img", args)
    assert acc[1:4] == ["-m", "accelerate.commands.launch", "--multi_gpu"] and "--num_processes=4" in acc
    assert acc[-3:] == ["stages.txt2img", *args]
    assert "--multi_gpu" not in command(LaunchParams("accelerate", 1, 2), "stages.txt2img", args)


@pytest.mark.slow
def test_launch_params_are_validated(params, tmp_path: Path):
    params["launch"]["sampling"]["processes"] = 4
    with pytest.raises(ParamsError, match=r"launch.sampling.processes: 4 processes need a launcher"):
        parse_params(params)
    params["launch"]["sampling"].update(launcher="acelerate", processes=2)
    with pytest.raises(ParamsError, match=r"did you mean 'accelerate'"):
        parse_params(params)
    params["launch"]["sampling"]["launcher"] = "accelerate"
    params["train_yolo"]["device"] = "cuda:0"
    with pytest.raises(ParamsError, match=r"train_yolo.device: 'cuda:0' is not one Ultralytics device"):
        parse_params(params)
    params["train_yolo"]["device"] = "0,1"  # Ultralytics' DDP: no step count, no final weights in this process
    with pytest.raises(ParamsError, match=r"train_yolo.device: '0,1' is not one Ultralytics device"):
        parse_params(params)
    params["train_yolo"]["device"] = "0"
    parse_params(params)
    proc = launched("scoring", "stages.txt2img", "--params", write_params(tmp_path / "p.yaml", params), "--out", "x")
    assert proc.returncode == 1 and error_lines(proc) == [
        f"error: {tmp_path / 'p.yaml'}: launch.scoring: no such section (known: sampling, training)"
    ]


def test_out_of_gpu_memory_is_one_line_naming_the_batch_size(capsys):
    import torch

    from synthaug.cli import run

    def main(_argv):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB\nmore detail")

    with pytest.raises(SystemExit) as exit_:
        run(main, [])
    err = capsys.readouterr().err.splitlines()
    assert exit_.value.code == 1 and len(err) == 1
    assert err[0].startswith(
        "error: out of GPU memory (CUDA out of memory. Tried to allocate 20.00 GiB); lower the "
        "batch size (generate.batch_size"
    )
