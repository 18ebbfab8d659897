# Two commands do everything on a fresh machine with Python 3.11:
#   make demo   creates .venv, installs flaxify, migrates the bundled Haiku project,
#               checks equivalence, converts its checkpoint, trains both, lints
#   make test   creates .venv if needed and runs the test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test venv clean

$(STAMP): pyproject.toml requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto tests

demo: $(STAMP)
	$(BIN)/python fixtures/run_demo.py

clean:
	rm -rf $(VENV) .demo build *.egg-info
