# Two commands (see README.md):
#   make        set up .venv, build the data, build the book site with every
#               chapter executed in full mode (book/_build/html)
#   make test   set up .venv, build the data, run unit tests + nbval (fast mode)
#               + the site build and browser tests (fast mode)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    := _build/chapters
CHAPTERS := $(sort $(wildcard chapters/[0-9][0-9]_*.ipynb))

.PHONY: all setup data chapters book test sync clean

all: book

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -r requirements.txt
	touch $(STAMP)

setup: $(STAMP)

data: setup
	$(BIN)/python -m bltlib.data build

# Every chapter in full mode as plain notebooks (executed copies in
# _build/chapters), without the site.
chapters: data
	@mkdir -p $(OUT)
	@for nb in $(CHAPTERS); do \
	  echo "== $$nb"; start=$$(date +%s); \
	  timeout 3600 $(BIN)/jupyter nbconvert --to notebook --execute \
	    --ExecutePreprocessor.timeout=1800 --output-dir $(OUT) $$nb \
	    || exit 1; \
	  echo "   $$(( $$(date +%s) - start )) s"; \
	done

# The main job, the book site: execute every chapter (full mode; BLT_FAST=1
# for fast mode) and build book/_build/html with warnings as errors
# (book/build.py runs jupyter-book with book/_config.yml and book/_toc.yml
# from the repo root).
book: data
	$(BIN)/python book/build.py

test: data
	BLT_FAST=1 $(BIN)/python -m pytest

# Regenerate every .ipynb from its py:percent twin; only the outputs of
# NBVAL_CHECK_OUTPUT cells are kept (executed once in fast mode).
sync: setup
	$(BIN)/python tests/tools/sync_notebooks.py

clean:
	rm -rf _build
