# The two commands of the README:
#   make demo   set up, fetch MNIST, train the default LeNet-5, print its test accuracy
#   make test   set up (Python packages and the system packages the tests read) and run the tests
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
RUN_DIR ?= runs/demo

.PHONY: demo test test-fast bench accuracy setup setup-test setup-system clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[train,data,image,report]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

setup: $(VENV)/.installed-runtime

setup-test: $(VENV)/.installed-test setup-system

setup-system:
	bash scripts/setup-system.sh

demo: setup
	$(BIN)/lenet5 data fetch --dataset mnist
	$(BIN)/lenet5 train --out $(RUN_DIR) --overwrite

test: setup-test
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

test-fast: setup-test
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -m 'not slow'

bench: setup-test
	$(BIN)/python benchmarks/bench.py

accuracy: setup
	$(BIN)/python benchmarks/accuracy.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
