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
