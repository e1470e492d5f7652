# ncbook: `make book` renders the book, `make test` runs every check. Both set up .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROFILE ?= smoke
DEVICE ?=
JOBS ?= 2
# Notebooks run side by side; one BLAS thread each keeps them from fighting over the cores.
export OMP_NUM_THREADS ?= 1
export NCBOOK_PROGRESS ?= 0

NOTEBOOK_SOURCES := $(sort $(wildcard notebooks/*.py))
STEMS := $(basename $(notdir $(NOTEBOOK_SOURCES)))
EXECUTED := $(STEMS:%=_executed/$(PROFILE)/%.ipynb)
LIBRARY := $(shell find ncbook -name '*.py') pyproject.toml params/$(PROFILE).yml

.PHONY: setup notebooks book lab test full stale full-stale clean lint bench gpu-check

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[book,dev,ray]'
	touch $@

# Execute every notebook with papermill (params/$(PROFILE).yml); only stale ones rerun.
notebooks: setup
	$(MAKE) --no-print-directory -j$(JOBS) $(EXECUTED)

_executed/$(PROFILE)/%.ipynb: notebooks/%.py $(LIBRARY)
	$(BIN)/python -m ncbook.run_notebook $< --profile $(PROFILE) $(if $(DEVICE),--device $(DEVICE))

# Render the executed notebooks and the chapters into book/_build/html (warnings are errors).
book: notebooks
	$(BIN)/python -m ncbook.pipeline.book prepare --profile $(PROFILE)
	rm -rf book/_build/html/_static  # Sphinx does not refresh edited static files on a rebuild
	$(BIN)/jupyter-book build book -W -n --keep-going --quiet

# JupyterLab on the notebooks: the override makes it open notebooks/*.py as notebooks (jupytext).
lab: setup
	mkdir -p $(VENV)/share/jupyter/lab/settings
	cp .jupyter/lab/settings/overrides.json $(VENV)/share/jupyter/lab/settings/
	$(BIN)/jupyter lab notebooks/

test: setup
	$(BIN)/python -m pytest

# Paper-scale runs: `make full DEVICE=cuda`; compact results land in results/full/. One notebook at
# a time, so each may use every core.
full:
	$(MAKE) --no-print-directory notebooks PROFILE=full DEVICE=$(or $(DEVICE),cuda) JOBS=1 \
		OMP_NUM_THREADS=$$(nproc)

# Rerun only the stored full results whose notebook, params/full.yml or ncbook code changed since
# they ran (their provenance.json records the hashes; `python -m ncbook.pipeline.book stale` lists them).
stale full-stale: setup
	for stem in $$($(BIN)/python -m ncbook.pipeline.book stale --profile full); do \
		$(BIN)/python -m ncbook.run_notebook notebooks/$$stem.py --profile full \
			$(if $(DEVICE),--device $(DEVICE)) || exit 1; \
	done

# The GPU check (bench/gpu_check.py): CUDA tests, metrics and training timed against the CPU, a
# markdown table under results/gpu/. Without CUDA it says so and exits non-zero.
gpu-check: setup
	$(BIN)/python bench/gpu_check.py

lint: setup
	$(BIN)/ruff check ncbook tests bench notebooks

bench: setup
	for script in bench/*.py; do $(BIN)/python $$script || exit 1; done

# Checkpoints go too: their names carry the hash of the code that wrote them, so after a code change
# they are never used again. results/full stays: it is committed.
clean:
	rm -rf _executed book/_build book/executed book/_extra results/smoke results/full/_scratch \
		results/full/_runs checkpoints .pytest_cache
