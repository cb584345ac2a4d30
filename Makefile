# nasflops: the two commands.
#   make run    install nasflops and score NAS-Bench-201 (all 15,625) into a Parquet dataset, print a summary
#   make test   install what the tests need and run them
PYTHON ?= python3
PIP := $(PYTHON) -m pip
PIPFLAGS := --disable-pip-version-check -q
OUT ?= out

.PHONY: run install test test-deps bench clean

# editable, so that `python -m nasflops` run from this directory finds the
# compiled core next to the sources
install:
	$(PIP) install $(PIPFLAGS) -c constraints.txt -e ".[plot]"

run: install
	$(PYTHON) -m nasflops score nb201 --all -o $(OUT)/nb201-cifar10 --convention flops --overwrite
	$(PYTHON) -m nasflops stats $(OUT)/nb201-cifar10 --plot $(OUT)/nb201-cifar10.png

test-deps:
	$(PIP) install $(PIPFLAGS) -c constraints.txt torch==2.13.0
	# the test extra includes transformers (language-model tests), held to the torch above
	$(PIP) install $(PIPFLAGS) -c constraints.txt -e ".[test]"
	$(PIP) install $(PIPFLAGS) -c constraints.txt --no-deps -r requirements-ref.txt
	# torchvision's only wheel for torch 2.13 is a CUDA build: no deps, so torch
	# stays the CPU one; tests/conftest.py makes it import on the CPU torch
	$(PIP) install $(PIPFLAGS) -c constraints.txt --no-deps torchvision==0.28.0 pillow

test: test-deps
	$(PYTHON) -m pytest -q -p no:cacheprovider

bench: install
	$(PYTHON) benchmarks/bench_core.py
	$(PYTHON) benchmarks/bench_spaces.py
	$(PYTHON) benchmarks/bench_pipeline.py
	$(PYTHON) benchmarks/bench_vs_hooks.py
	$(PYTHON) benchmarks/bench_bridge.py

clean:
	rm -rf build *.egg-info nasflops/_core.c nasflops/*.so $(OUT)
