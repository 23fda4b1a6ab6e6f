# One task runner for people and CI. `make demo` and `make test` set everything up themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo-out
PYTEST_ARGS ?=

.PHONY: setup demo test lint unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first, pinned to the CPU build that lies on these machines' disk (pip find-links), so
# nothing can pull a CUDA torch; then the project with its dev tools.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet 'torch==2.13.0'
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

setup: $(STAMP)

demo: setup
	@test -f $(DEMO_DIR)/model/config.json || \
		$(BIN)/adaptgate demo-model $(DEMO_DIR)/model --arch qwen3 --format fp8_block
	$(BIN)/adaptgate run $(DEMO_DIR)/model --target ascend-a2 --device 910b4 \
		--run-dir $(DEMO_DIR)/run; status=$$?; \
		echo "report: $(abspath $(DEMO_DIR))/run/REPORT.md"; exit $$status

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python benchmarks/bench_inspect_headers.py

clean:
	rm -rf $(DEMO_DIR) runs .pytest_cache .mypy_cache .ruff_cache
