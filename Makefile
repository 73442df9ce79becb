# Two entry points on a fresh clone: `make run` (the app) and `make test` (what CI runs).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch/torchvision first and pinned: a bare `torch` requirement can pull a several-GB build we don't want.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

.PHONY: run test install clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

run: install
	$(PY) app.py $(ARGS)

# Two workers, a test file each (pytest-xdist): one test at a time left a core idle half the time (the browser
# tests wait on pages and jobs); tests/conftest.py gives each worker its share of the threads and hands the longest
# files out first, which xdist (3.5 on) would undo by reordering files by their number of tests.
TEST_WORKERS ?= 2

test: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
