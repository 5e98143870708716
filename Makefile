# Entry points: `make repro` (the pipeline), `make test` (the suite; `make test-fast`: its fast tier), `make app` (the UI;
# ARGS="--host 0.0.0.0 --port 8080" for another interface or port). Each builds .venv first.
VENV   := .venv
PYTHON ?= python3
STAMP  := $(VENV)/.installed-$(shell sha1sum requirements.txt | cut -c1-12)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: repro test test-fast app chromium clean-venv

$(STAMP): requirements.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q -r requirements.txt
	rm -f $(VENV)/.installed-* && touch $@

repro: $(STAMP)
	dvc repro

app: $(STAMP)
	python -m synthaug.app $(ARGS)

test: $(STAMP) chromium
	ruff format --check .
	ruff check .
	python -m pytest -q tests

# No stage runs, no DVC, no browser (tests marked slow are left out; one that starts a stage fails):
# the minutes-long tier for an edit-test loop. `make test` (CI) runs everything.
test-fast: $(STAMP)
	ruff format --check .
	ruff check .
	SYNTHAUG_FAST_TESTS=1 python -m pytest -q -m "not slow" tests

# The report is tested in a real headless browser: Debian's chromium, installed when missing.
chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { echo "installing Debian's chromium (for the report's browser test)"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } >/dev/null \
	    || echo "warning: could not install chromium (not root?); the report's browser test will fail"; }

clean-venv:
	rm -rf $(VENV)
