# Two commands on a fresh machine: `make demo` and `make test`. Both build .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench-decode bench-gpu gpu-bundle clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), f"vidfit needs Python >= 3.11, found {sys.version}"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/vidfit demo

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

bench-decode: $(STAMP)
	$(BIN)/python benchmarks/decode.py

# The GPU acceptance suite (docs/BENCHMARKS.md), run on the GPU machine with its own python: the image's torch.
bench-gpu:
	python3 benchmarks/gpu_suite.py

# Wheels the GPU image lacks (PyAV for cp312, pure-Python dependencies), for the suite to install with no network.
gpu-bundle: $(STAMP)
	$(BIN)/python benchmarks/_bundle.py .gpu-bundle

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
