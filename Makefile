# The two set-up commands of the README: `make demo` and `make test`. Both are safe to run again.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint venv system-deps

demo: $(STAMP)
	$(BIN)/vigil demo

test: system-deps $(STAMP) lint
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

venv: $(STAMP)

# torch==2.14.1 / torchvision==0.29.1 install from this machine's local wheels through pip.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@# opencv-contrib replaced opencv-python-headless (same cv2 package): an older venv drops it first
	$(BIN)/python -m pip uninstall -q -y opencv-python-headless 2>/dev/null || true
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

system-deps:
	tools/system-deps.sh
