"""The pipeline's stages, one per file, run as ``python -m stages.<name>`` by dvc.yaml.

Importing this package makes the process offline and home-directory clean *before* any stage
imports diffusers, transformers or ultralytics, which read their settings at import time."""

from synthaug.offline import harden

harden()
