# Two entry points: `make repro` (the pipeline) and `make test` (the suite). Both build .venv first.
VENV   := .venv
PYTHON ?= python3
STAMP  := $(VENV)/.installed-$(shell sha1sum requirements.txt | cut -c1-12)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: repro test bench clean-venv

$(STAMP): requirements.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q -r requirements.txt
	rm -f $(VENV)/.installed-* && touch $@

repro: $(STAMP)
	dvc repro

test: $(STAMP)
	python -m pytest -q tests

clean-venv:
	rm -rf $(VENV)
