"""The prompt records: one per image to make — class, prompt, negative prompt and a seed that
depends only on (seed, class name, index). The prompts stage writes them; the app remakes them to
sample one exactly as the pipeline did."""

from __future__ import annotations

from collections.abc import Sequence

from synthaug.params import PromptsParams
from synthaug.seeds import stable_seed


def make_records(classes: Sequence[str], p: PromptsParams, base_seed: int) -> list[dict]:
    """Record ``i`` of a class: template ``i mod T`` with style ``(i div T) mod S``."""
    records = []
    for k, name in enumerate(classes):
        for i in range(p.per_class):
            template = p.templates[i % len(p.templates)]
            style = p.styles[(i // len(p.templates)) % len(p.styles)]
            prompt = template.format(name=name) + (f", {style}" if style else "")
            records.append(
                {
                    "id": f"{name}-{i:04d}",
                    "class": k,
                    "name": name,
                    "prompt": prompt,
                    "negative_prompt": p.negative_prompt,
                    "seed": stable_seed(base_seed, name, i),
                }
            )
    return records
