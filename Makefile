# Two commands for a fresh machine with Python 3.11:
#   make demo   install everything, then run the whole pipeline on the built-in demo corpus
#   make test   install everything, then run the tests
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
DEMO_CORPUS   := datasets/IEMOCAP_demo
DEMO_MANIFEST := datasets/IEMOCAP_demo_manifest.csv

.PHONY: install demo test clean-demo

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

demo: install
	$(PY) datasets/make_demo_corpus.py --out $(DEMO_CORPUS)
	$(PY) datasets/prepare_IEMOCAP.py --iemocap-dir $(DEMO_CORPUS) --manifest $(DEMO_MANIFEST)

test: install
	$(PY) -m pytest -q

clean-demo:
	rm -rf $(DEMO_CORPUS) $(DEMO_MANIFEST)
