"""Scheduler registry as data: name → (diffusers class name, the sampler name Stable Diffusion web
UIs write in a PNG's ``parameters`` chunk). Light to import, so params validation can use it."""

SCHEDULERS: dict[str, tuple[str, str]] = {
    "ddim": ("DDIMScheduler", "DDIM"),
    "pndm": ("PNDMScheduler", "PLMS"),
    "ddpm": ("DDPMScheduler", "DDPM"),
    "euler": ("EulerDiscreteScheduler", "Euler"),
    "euler_a": ("EulerAncestralDiscreteScheduler", "Euler a"),
    "lms": ("LMSDiscreteScheduler", "LMS"),
    "heun": ("HeunDiscreteScheduler", "Heun"),
    "dpmpp": ("DPMSolverMultistepScheduler", "DPM++ 2M"),
    "unipc": ("UniPCMultistepScheduler", "UniPC"),
}


def effective_steps(steps: int, strength: float) -> int:
    """The denoising steps img2img really takes at ``strength`` (diffusers' SDEdit: it skips the first
    ``1 - strength`` of a ``steps``-step schedule), e.g. 10 of 25 at 0.4; txt2img (strength 1) takes all."""
    return min(int(steps * strength), steps)
