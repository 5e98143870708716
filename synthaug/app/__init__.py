"""The app (``make app``): a local Gradio UI over the pipeline's own code.

- :mod:`synthaug.app.engine` — the work: loads a backend once, samples txt2img / img2img with any
  registered scheduler, saves each PNG with its ``parameters`` chunk, draws X/Y grids. No Gradio.
- :mod:`synthaug.app.experiments` — params overrides validated by synthaug.params, the ``dvc exp
  run`` line, DVC's queue and experiment table, an experiment's curves at its revision.
- :mod:`synthaug.app.handlers` — :class:`~synthaug.app.handlers.App`: each tab's events, as plain
  functions of the form's values (tested directly).
- :mod:`synthaug.app.tabs` — the Gradio layout, one function per tab.
- ``python -m synthaug.app`` (``__main__``) serves it: loopback by default, offline, Gradio's
  analytics off, its temp files in the repo's ignored ``.gradio/``.
"""
