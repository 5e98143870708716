"""``python -m synthaug.app [--host 127.0.0.1] [--port 7860]`` (``make app``): serve the Gradio UI."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from synthaug.app.handlers import App
from synthaug.dag import ROOT


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    ap.add_argument("--port", type=int, default=7860)
    args = ap.parse_args(argv)
    from synthaug.app.tabs import CSS, build, gradio_offline

    gradio_offline(ROOT / ".gradio")
    app = App()
    demo = build(app)
    demo.queue(default_concurrency_limit=1).launch(
        server_name=args.host,
        server_port=args.port,
        show_error=True,
        ssr_mode=False,
        mcp_server=False,
        pwa=False,
        footer_links=[],
        css=CSS,
        allowed_paths=[str(app.engine.out)],
    )


if __name__ == "__main__":
    main()
