"""Entry-point wrapper shared by the stages: logging and one-line errors (offline set-up happens
when the ``stages`` package is imported, before any heavy import)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence

from synthaug.errors import UserError

def run(main: Callable[[Sequence[str] | None], None], argv: Sequence[str] | None = None) -> None:
    """Run a stage's ``main``: user errors become one ``error:`` line and exit status 1."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        main(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
