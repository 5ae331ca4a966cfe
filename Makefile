# reprolib — make targets. Every target installs what it needs first, so on a fresh clone
#   make book    builds the rendered book (the main job)
#   make test    runs the test suite
# work without any other step. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= cpu
ARGS ?=

.PHONY: setup test data models chapter chapters book book-check bench bench-zoo bench-deps clean help

help:
	@echo "make book      build the HTML book from the executed chapters (book/_build/html)"
	@echo "make test      run the tests (smoke-runs every chapter and builds the book too)"
	@echo "make chapter NAME=convex PROFILE=cpu ARGS='-p n_images 512'   re-run one chapter"
	@echo "make chapters  re-run every chapter with PROFILE (default cpu) into book/chapters"
	@echo "make data      fetch and verify MNIST and CIFAR-10 (REPROLIB_DATA_MIRROR or download)"
	@echo "make models    train any model checkpoint missing from data/models"
	@echo "make bench     reprolib against Foolbox, ART and torchattacks (ARGS='--models cw_mnist --images 50')"
	@echo "make bench-zoo reprolib's ZOO against ART's, per image"
	@echo "make setup     create .venv and install everything (idempotent)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned: this resolves to the local CPU build, never to CUDA wheels.
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[book,test,defenses]"
	@command -v chromium >/dev/null 2>&1 || \
	  { echo "installing Debian's chromium for the browser test"; \
	    (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || \
	    echo "WARNING: could not install chromium; the browser test will be skipped outside CI"; }
	touch $(STAMP)

setup: $(STAMP)

data: $(STAMP)
	$(PY) -m reprolib.data

models: $(STAMP)
	$(PY) -m reprolib.models

test: $(STAMP)
	$(PY) -m pytest

chapter: $(STAMP)
	@test -n "$(NAME)" || { echo "usage: make chapter NAME=<chapter> [PROFILE=cpu] [ARGS='-p key value']"; exit 2; }
	@# the appendix and the ZOO chapter compare reprolib with the peer libraries: install them first
	@if [ "$(NAME)" = benchmarks ] || [ "$(NAME)" = zoo ]; then $(MAKE) --no-print-directory bench-deps; fi
	$(VENV)/bin/reprolib-chapter run $(NAME) --profile $(PROFILE) $(ARGS)

chapters: $(STAMP) bench-deps
	$(VENV)/bin/reprolib-chapter run-all --profile $(PROFILE)

book: $(STAMP)
	$(VENV)/bin/reprolib-chapter build

book-check: $(STAMP)
	$(VENV)/bin/reprolib-chapter check

bench-deps: $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]"
	# torchattacks declares torchvision and requests~=2.25.1; it needs neither, so no deps
	$(PY) -m pip install --quiet --no-deps "torchattacks==3.5.1"

bench: bench-deps
	$(PY) benchmarks/peers.py $(ARGS)

bench-zoo: bench-deps
	$(PY) benchmarks/zoo_vs_art.py $(ARGS)

clean:
	rm -rf book/_build build .pytest_cache
