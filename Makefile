# Two entry points a newcomer needs: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test lint demo zoo bench clean-venv

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP) data-check

data-check:
	@test -d /usr/share/datasets/fashion-mnist || test -n "$$CSRP_DATA_DIR" || \
	  (echo "Fashion-MNIST missing: run 'sudo apt-get install dataset-fashion-mnist' or set CSRP_DATA_DIR" && exit 1)

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .

demo: setup
	$(PY) -m verifier_client demo --repository zoo

zoo: setup
	$(PY) -m models zoo build --out zoo

clean-venv:
	rm -rf $(VENV)
