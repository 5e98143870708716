"""GPU sampling throughput: images/s per scheduler, dtype and torch.compile, and the GPU memory peak.

    python bench/gpu_sampling.py                       # the builtin model (models/builtin), batch 50 and 512
    python bench/gpu_sampling.py --model sd15 --batch 8 --images 32
                                                       # Stable Diffusion 1.5's architecture (UNet 860M,
                                                       # VAE, CLIP text encoder) at 512 px, random weights:
                                                       # speed and memory do not depend on the weights

It samples through the generation stages' own backends (synthaug.diffusion), so the figures are
those of txt2img without the PNG writing. Each row: one warm-up batch (compilation happens there),
then ``--images`` images timed with the GPU synchronised. Needs a CUDA device; prints a Markdown
table and writes it as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from synthaug.offline import harden  # noqa: E402

harden()
from synthaug.diffusion import Backend, DiffusersBackend, Sampling, load_backend  # noqa: E402
from tests.tiny_models import sd_pipeline  # noqa: E402  (SD 1.x parts into a pipeline, as the tests build it)

log = logging.getLogger("gpu_sampling")


def sd15(dtype: torch.dtype, device: str = "cuda") -> DiffusersBackend:
    """Stable Diffusion 1.5's architecture with random weights, built on the GPU (nothing downloaded)."""
    import tempfile

    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    chars = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["<|startoftext|>", "<|endoftext|>", "!", ","] + list(chars) + [c + "</w>" for c in chars]
    with tempfile.TemporaryDirectory() as tok_dir:
        (Path(tok_dir) / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
        (Path(tok_dir) / "merges.txt").write_text("#version: 0.2\n")
        tokenizer = CLIPTokenizer.from_pretrained(tok_dir, model_max_length=77, pad_token="!")
    with torch.device(device):
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                hidden_size=768,
                intermediate_size=3072,
                num_attention_heads=12,
                num_hidden_layers=12,
                max_position_embeddings=77,
                vocab_size=49408,
            )
        )
        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768)  # the defaults are SD 1.x's UNet
        vae = AutoencoderKL(
            block_out_channels=(128, 256, 512, 512),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=2,
            sample_size=512,
        )
    pipe = sd_pipeline(vae, text_encoder, tokenizer, unet).to(dtype=dtype)
    return DiffusersBackend(pipe, 512)


def records(n: int, offset: int = 0) -> list[dict]:
    return [
        {"class": i % 10, "seed": offset + i, "prompt": f"a photo of the digit {i % 10}", "negative_prompt": "blurry"}
        for i in range(n)
    ]


def measure(backend: Backend, scheduler_name: str, steps: int, batch: int, images: int) -> dict:
    def run(recs: list[dict]) -> None:
        options = {"skip_prk_steps": True} if scheduler_name == "pndm" else {}
        backend.txt2img(recs, Sampling.of(scheduler_name, backend.scheduler_config, options, steps, 2.0))

    run(records(batch))  # warm-up: cuDNN autotuning, torch.compile
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for i in range(0, images, batch):
        run(records(batch, offset=10_000 + i))  # full batches only: a short one would recompile
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return {
        "images": images,
        "images_per_second": round(images / seconds, 2),
        "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["builtin", "sd15"], default="builtin")
    ap.add_argument("--schedulers", default="ddim,pndm,euler,dpmpp,unipc")
    ap.add_argument("--dtypes", default="float32,float16,bfloat16")
    ap.add_argument("--compile", default="off,on", help="off, on, or off,on")
    ap.add_argument("--batch", default="50,512", help="comma-separated batch sizes")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--images", type=int, default=2048, help="timed images per row")
    ap.add_argument("--out", type=Path, default=Path("bench-gpu-sampling.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not torch.cuda.is_available():
        sys.exit("error: no CUDA device; this bench measures GPU sampling (run it on a GPU machine)")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    rows = []
    for dtype in args.dtypes.split(","):
        for compiled in args.compile.split(","):
            torch._dynamo.reset()
            if args.model == "builtin":
                backend = load_backend(
                    "builtin", ROOT / "models" / "builtin", device="cuda", dtype=dtype, compile=compiled == "on"
                )
            else:
                backend = sd15(getattr(torch, dtype))
                if compiled == "on":
                    backend.pipe.unet = backend.img2img_pipe.unet = torch.compile(backend.pipe.unet)
            for batch in map(int, args.batch.split(",")):
                for name in args.schedulers.split(","):
                    t0 = time.perf_counter()
                    row = {
                        "model": args.model,
                        "dtype": dtype,
                        "compile": compiled,
                        "batch": batch,
                        "scheduler": name,
                        "steps": args.steps,
                        **measure(backend, name, args.steps, batch, max(args.images // batch, 1) * batch),
                    }
                    row["seconds_total"] = round(time.perf_counter() - t0, 1)
                    log.info("%s", row)
                    rows.append(row)
            del backend
            torch.cuda.empty_cache()
    print(
        f"\n{torch.cuda.get_device_name()}, torch {torch.__version__}, {args.steps} steps, guidance 2 (CFG: 2 UNet "
        "passes per image and step)\n"
    )
    print("| model | dtype | compile | batch | scheduler | images/s | GPU peak GiB |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['dtype']} | {r['compile']} | {r['batch']} | {r['scheduler']} | "
            f"{r['images_per_second']} | {r['peak_gib']} |"
        )
    args.out.write_text(
        json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
