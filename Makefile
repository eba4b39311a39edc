# sasim: `make run` and `make test` work on a fresh clone; both create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
SASIM  := $(VENV)/bin/sasim
export NUMBA_CACHE_DIR := $(CURDIR)/.numba_cache
export MPLBACKEND := Agg

.PHONY: run test wheel bench docs clean

$(VENV)/.base-installed: pyproject.toml setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	@touch $@

$(VENV)/.dev-installed: pyproject.toml $(VENV)/.base-installed
	$(PY) -m pip install --quiet -e '.[dev,torch,distributed,rtl]'
	@touch $@

run: $(VENV)/.base-installed  ## the default job: compare the designs on the shipped workloads (CNNs, the digits ViT, a GPT-2 decode step)
	$(SASIM) compare --workload digits_int8 --workload resnet18 --workload digits_vit_int8 --workload gpt2_decode --out out/compare

wheel: $(VENV)/.base-installed  ## build dist/sasim-*.whl (it carries the shipped configs, workloads, sweeps)
	$(PY) -m pip wheel --no-deps --wheel-dir dist .

test: $(VENV)/.dev-installed  ## the whole test suite (tests/test_wheel.py builds and installs the wheel)
	$(PY) -m pytest -q -n 2 -p no:cacheprovider

bench: $(VENV)/.dev-installed  ## the benchmarks (slow; they print figures, they do not assert)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

docs: $(VENV)/.base-installed  ## regenerate the generated parts of docs/
	$(PY) -m simulator.docgen

clean:
	rm -rf out .numba_cache .pytest_cache build dist
