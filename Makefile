# sasim: `make run` and `make test` work on a fresh clone; both create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
SASIM  := $(VENV)/bin/sasim
export NUMBA_CACHE_DIR := $(CURDIR)/.numba_cache
export MPLBACKEND := Agg

.PHONY: run test wheel bench bench-zigzag bench-multicore docs clean

$(VENV)/.base-installed: pyproject.toml setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	@touch $@

$(VENV)/.dev-installed: pyproject.toml $(VENV)/.base-installed
	$(PY) -m pip install --quiet -e '.[dev,torch,distributed,rtl]'
	@touch $@

# numba's kernels for SySMT runs, compiled ahead of time (docs/performance.md, "Kernels compiled
# ahead of time"); a failed build leaves numba's just-in-time kernels, which give the same results
# (a build that fails says why in one line, and is tried again next time)
AOT_SOURCES := $(addprefix simulator/kernels/,aot.py compiled.py jit.py sysmt.py sysmt_loops.py \
	metrics.py metrics_loops.py dram_controller.py dram_controller_loops.py)

$(VENV)/.aot-built: $(VENV)/.base-installed $(AOT_SOURCES)
	@if $(PY) -m simulator.kernels.aot; then touch $@; fi

# sasim's byte code, written once: an editable install compiles nothing, and with
# PYTHONDONTWRITEBYTECODE set (or a read-only checkout) every run would compile sasim's
# modules from source again, about 0.15 s of each run (docs/performance.md, "Start-up")
PY_SOURCES := $(shell find simulator -name '*.py')

$(VENV)/.bytecode: $(VENV)/.base-installed $(PY_SOURCES)
	$(PY) -m compileall -q simulator
	@touch $@

run: $(VENV)/.base-installed $(VENV)/.aot-built $(VENV)/.bytecode  ## the default job: compare the designs on the shipped workloads (CNNs, the digits ViT, a GPT-2 decode step)
	$(SASIM) compare --workload digits_int8 --workload resnet18 --workload digits_vit_int8 --workload gpt2_decode --out out/compare

wheel: $(VENV)/.base-installed  ## build dist/sasim-*.whl (it carries the shipped configs, workloads, sweeps)
	$(PY) -m pip wheel --no-deps --wheel-dir dist .

test: $(VENV)/.dev-installed $(VENV)/.aot-built $(VENV)/.bytecode  ## the whole test suite (tests/test_wheel.py builds and installs the wheel)
	$(PY) -m pytest -q -n 2 -p no:cacheprovider

bench: $(VENV)/.dev-installed $(VENV)/.aot-built $(VENV)/.bytecode  ## the benchmarks (slow; they print figures, they do not assert)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# ZigZag lives in its own environment (its onnx, sympy, networkx, seaborn stay out of sasim's);
# zigzag-dse 3.9.1 imports `six` without declaring it, so it is pinned beside it.
ZIGZAG_VENV ?= .venv-zigzag

$(ZIGZAG_VENV)/.installed:
	@test -x $(ZIGZAG_VENV)/bin/python || $(PYTHON) -m venv $(ZIGZAG_VENV)
	$(ZIGZAG_VENV)/bin/python -m pip install --quiet zigzag-dse==3.9.1 six==1.17.0
	@touch $@

bench-zigzag: $(VENV)/.base-installed $(ZIGZAG_VENV)/.installed  ## sasim against ZigZag: ResNet-18 energy by component (docs/validation.md)
	$(PY) benchmarks/zigzag_energy.py --zigzag-python $(ZIGZAG_VENV)/bin/python

bench-multicore: $(VENV)/.base-installed $(VENV)/.aot-built  ## ResNet-50 batch 8 on 1, 2, 4 SySMT cores per partition (docs/memory-model.md, "Multi-core")
	$(PY) benchmarks/multicore_scaling.py

docs: $(VENV)/.base-installed  ## regenerate the generated parts of docs/
	$(PY) -m simulator.docgen

clean:
	rm -rf out .numba_cache .pytest_cache build dist simulator/kernels/_aot.*.so $(VENV)/.aot-built \
		$(VENV)/.bytecode
