"""The txt2img recipe, once: prompt records sampled by a backend into images, each with the
``parameters`` chunk (A1111's infotext) that says how it was made. The txt2img stage, the scheduler
study and the app all call :func:`txt2img`, so an image of one is an image of the others."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from synthaug import registry
from synthaug.diffusion import Backend, Sampling
from synthaug.infotext import sd_parameters


def txt2img(
    backend: Backend, records: Sequence[dict], scheduler: str, sampling: Sampling, model_id: str
) -> list[tuple[np.ndarray, str]]:
    """Each record's image and its chunk text (``scheduler``: the registry name ``sampling`` was
    made from; ``model_id``: how the chunk names the model)."""
    sampler = registry.SCHEDULERS[scheduler][1]
    images = backend.txt2img(records, sampling)
    return [
        (image, sd_parameters(record, sampler, sampling.steps, sampling.guidance, image.shape[1::-1], model_id))
        for record, image in zip(records, images)
    ]
