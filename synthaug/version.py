"""synthaug's version (pyproject.toml's, checked by a test): the ``Version`` every PNG chunk writes."""

VERSION = "0.1.0"
