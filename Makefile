# Two commands for a fresh machine with Python 3.11:
#   make demo   install everything, then run the whole pipeline on the built-in demo corpus
#   make test   install everything, then run the tests
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
# The demo: a synthetic corpus in the IEMOCAP layout, four noise types at four SNRs plus two
# reverberant rooms, MFCC features (the baselines' published input; GLAM on 128-band log-Mel is too
# heavy for a CPU demo), three models, leave-one-session-out, few epochs.
DEMO_CORPUS    := datasets/IEMOCAP_demo
DEMO_MANIFEST  := datasets/IEMOCAP_demo_manifest.csv
DEMO_AUGMENTED := datasets/IEMOCAP_demo_augmented
DEMO_STANDARD  := datasets/IEMOCAP_demo_standard
DEMO_FEATURES  := features/demo
DEMO_SNRS      := -5 0 10 20
DEMO_EPOCHS    := 8
# Music and ambient noise: real recordings (datasets/noise/ from datasets/download_noise.py, then ../shared)
# where present, else generated stand-ins.
# The demo remembers which (a fingerprint of the noise folders' listing) and, when it changed,
# removes its own augmented, standardised, feature and result folders first, so that `make demo` reruns
# whatever changed. (Your own runs instead stop with a message naming the changed source.)
SHARED_NOISE   := ../shared/data/noise
DOWNLOADED_NOISE := datasets/noise
DEMO_NOISE     := $(if $(wildcard $(DOWNLOADED_NOISE)/* $(SHARED_NOISE)/music/* $(SHARED_NOISE)/ambient/*),shared-$(shell ls -R $(DOWNLOADED_NOISE) $(SHARED_NOISE)/music $(SHARED_NOISE)/ambient 2>/dev/null | cksum | cut -d' ' -f1),generated)
DEMO_STAMP     := $(DEMO_AUGMENTED)/.demo_noise

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
	@if [ -d $(DEMO_AUGMENTED) ] && [ "$$(cat $(DEMO_STAMP) 2>/dev/null)" != "$(DEMO_NOISE)" ]; then \
		echo "demo: noise sources changed since the last demo (now $(DEMO_NOISE)); starting the demo's noisy data afresh"; \
		rm -rf $(DEMO_AUGMENTED) $(DEMO_STANDARD) $(DEMO_FEATURES) results/demo; fi
	$(PY) datasets/augment_IEMOCAP.py --manifest $(DEMO_MANIFEST) --iemocap-dir $(DEMO_CORPUS) \
		--out $(DEMO_AUGMENTED) --snrs $(DEMO_SNRS)
	@echo "$(DEMO_NOISE)" > $(DEMO_STAMP)
	$(PY) datasets/handleIEMOCAP.py --manifest $(DEMO_MANIFEST) --augmented-dir $(DEMO_AUGMENTED) --out $(DEMO_STANDARD)
	$(PY) feature_extraction/extract_features_iemocap_mfcc.py --manifest $(DEMO_STANDARD)/manifest.csv \
		--out $(DEMO_FEATURES)/mfcc
	$(PY) train_LANCET.py --features-dir $(DEMO_FEATURES) --features mfcc --models LANCET GLAM TCNet \
		--epochs $(DEMO_EPOCHS) --run-name demo

test: install
	$(PY) -m pytest -q

clean-demo:
	rm -rf $(DEMO_CORPUS) $(DEMO_MANIFEST) $(DEMO_AUGMENTED) $(DEMO_STANDARD) $(DEMO_FEATURES) results/demo
