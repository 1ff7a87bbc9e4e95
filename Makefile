# Two commands do all the set-up on a fresh machine: `make test` and `make train`.
# Both create .venv and install what is missing; a stamp file per install step keeps
# the second run fast.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.verirl-installed
VLLM_STAMP := $(VENV)/.verirl-vllm-installed
PYTEST_ARGS ?=

.PHONY: test train install vllm clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --upgrade --quiet pip
	$(PIP) install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n auto $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
