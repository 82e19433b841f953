# The newcomer's commands. Builds go to $(CARGO_TARGET_DIR) when it is set.
CARGO ?= cargo
# The command-line tool is a cargo feature (off for library users); every target here wants it.
CLI = --features cli

.PHONY: demo run test test-gpu test-mpi test-slides test-openblas doc bench lint fmt fuzz bench-compare python test-python python-venv

## The main job: a synthetic cohort, then a model trained on it (small preset, CPU, minutes).
demo:
	rm -rf demo
	$(CARGO) run --release $(CLI) -- synth --out demo/cohort --slides 120 --seed 1
	$(CARGO) run --release $(CLI) -- check --csv demo/cohort/cohort.csv --features demo/cohort/features
	$(CARGO) run --release $(CLI) -- train --csv demo/cohort/cohort.csv --features demo/cohort/features \
		--out demo/run --preset small --epochs 12 --bag-size 32 --lr 3e-4 --seed 1
	@echo "plots: demo/run/loss.png demo/run/metric.png; metrics: demo/run/metrics.json"

## Build the model with the original's published arguments and run it on a random batch.
run:
	$(CARGO) run --release --example random_inputs

## The test suite (tiny model configurations, debug build).
test:
	$(CARGO) test --locked $(CLI)

## The GPU code path (wgpu) against flex; runs on a software Vulkan device (Debian:
## mesa-vulkan-drivers) when there is no GPU.
test-gpu:
	$(CARGO) test --locked --features wgpu,cli --test wgpu

## Training across MPI processes (needs OpenMPI or MPICH, and libclang, to build; Debian:
## libopenmpi-dev openmpi-bin libclang-dev) and over several devices of one process.
test-mpi:
	$(CARGO) test --locked --features mpi,cli --test mpi
	$(CARGO) test --locked --features mpi,cli --test it multi_device::

## Heatmaps over whole-slide images through OpenSlide (needs libopenslide; Debian:
## libopenslide-dev): the slide tests on the fixture TIFF, which fail rather than skip here.
test-slides:
	$(CARGO) test --locked --features cli,openslide --test it slide_heatmaps::
	$(CARGO) clippy --locked --all-targets --features cli,openslide -- -D warnings

## The products through OpenBLAS (needs libopenblas; Debian: libopenblas-dev): the kernels'
## tests, where the OpenBLAS path is checked against the gemm path, and the model's behaviour.
test-openblas:
	$(CARGO) test --locked --features cli,openblas --lib kernels
	$(CARGO) test --locked --features cli,openblas --test it model_behaviour::
	$(CARGO) clippy --locked --all-targets --features cli,openblas -- -D warnings

## The Python package (python/, docs/python.md): its wheel (maturin, release build: many
## minutes the first time) in $(WHEELS). maturin comes from the test environment PY_VENV
## (created when missing; kept under ~/.cache, as CI keeps it, since PyTorch is large).
PY_VENV ?= $(HOME)/.cache/med-crossvit/venv-torch
PY_PACKAGES ?= maturin numpy pandas pytest h5py safetensors tensorboard
# PyPI's torch wheel (large: it brings CUDA libraries it does not need here). Where PyTorch's
# own index is reachable, TORCH_INDEX=https://download.pytorch.org/whl/cpu gets the CPU wheel.
TORCH_INDEX ?=
WHEELS ?= python/dist
python: python-venv
	rm -f $(WHEELS)/med_crossvit-*.whl
	$(PY_VENV)/bin/maturin build --release --locked --manifest-path python/Cargo.toml --out $(WHEELS)

## The test environment, reused when it has what the tests need (PyTorch's CPU wheel: the
## torch module's tests).
PY_NEEDS ?= maturin, numpy, pandas, pytest, torch, h5py, safetensors, tensorboard
python-venv:
	@$(PY_VENV)/bin/python -c "import $(PY_NEEDS)" 2>/dev/null || { \
		python3 -m venv $(PY_VENV) && \
		$(PY_VENV)/bin/pip install -q $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) torch $(PY_PACKAGES); }

## The package's tests (pytest, python/tests/) with the wheel installed into PY_VENV, against
## the command-line tool (MED_CROSSVIT_BIN; MED_CROSSVIT_REQUIRE_PYTHON_CLI=1 makes its
## absence a failure rather than a skip).
test-python: python
	$(CARGO) build --locked $(CLI) --bin med-crossvit
	$(PY_VENV)/bin/pip install -q --force-reinstall --no-deps $(WHEELS)/med_crossvit-*.whl
	MED_CROSSVIT_BIN=$(abspath $(or $(CARGO_TARGET_DIR),target))/debug/med-crossvit \
		$(PY_VENV)/bin/python -m pytest -q python/tests

## The API reference, warning-free, in target/doc/med_crossvit/index.html.
doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --lib

## Benchmarks (release build).
bench:
	$(CARGO) bench --bench model
	BENCH_SLIDES=10 $(CARGO) bench --bench data

## Ours against a PyTorch twin of the model (benches/torch/), alternating, ROUNDS rounds, in
## one run: forward pass, training step and checkpointed step, their ratios, the CPU model and
## the backend's matmul rate (docs/performance.md). Needs PyTorch in PYTHON:
## python3 -m venv .venv-torch && .venv-torch/bin/pip install torch h5py
## Our products through OpenBLAS: make bench-compare FEATURES=cli,openblas
ROUNDS ?= 2
PYTHON ?= .venv-torch/bin/python
FEATURES ?= cli
bench-compare:
	ROUNDS=$(ROUNDS) PYTHON=$(PYTHON) CARGO="$(CARGO)" FEATURES=$(FEATURES) sh benches/torch/compare.sh

## Fuzz every parser of user files (release build), FUZZ_SECONDS per target; findings in
## target/fuzz/crashes. Targets: FUZZ_TARGETS="cohort h5 ..." (default all). docs/fuzzing.md
FUZZ_SECONDS ?= 90
FUZZ_TARGETS ?= all
fuzz:
	$(CARGO) run --release --features fuzz --example fuzz -- --seconds $(FUZZ_SECONDS) $(FUZZ_TARGETS)

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets $(CLI) -- -D warnings

fmt:
	$(CARGO) fmt
