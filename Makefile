# Two commands on a fresh machine: `make fuzz` and `make test`. Both create .venv on first use.
PY := .venv/bin/python
STAMP := .venv/.installed
WORK := $(CURDIR)/.work
# Caches stay inside the project, not in ~ (inductor, keras, TF, pip, matplotlib).
export TORCHINDUCTOR_CACHE_DIR := $(WORK)/inductor
export KERAS_HOME := $(WORK)/keras
export XDG_CACHE_HOME := $(WORK)/cache
export MPLCONFIGDIR := $(WORK)/matplotlib
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: fuzz test test-fast lint bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3.11 -m venv .venv || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

fuzz: $(STAMP)
	$(PY) -m fuzzer.cli fuzz --time 5m $(if $(wildcard crashes/parallax.db),--resume,)
	$(PY) -m fuzzer.cli report crashes/ --html crashes/report.html
	@echo "report: $(CURDIR)/crashes/report.html"

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP)
	.venv/bin/ruff check generators oracles fuzzer tests bench

bench: $(STAMP)
	$(PY) bench/generate.py

clean:
	rm -rf .work
