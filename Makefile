# dropbench: `make demo` and `make test` each set up .venv/ (tools/setup_env.sh) first.
# DROPBENCH_WHEELHOUSE=DIR  take a prebuilt mmcv 2.1.0 wheel from DIR instead of building it (CI: ../shared/wheels)
VENV   := .venv
PY     := $(VENV)/bin/python
DEMO   ?= results/smoke

.PHONY: setup demo test lint clean-venv

setup:
	@bash tools/setup_env.sh

demo: setup
	$(VENV)/bin/dropbench data synth-imagenet --out $(DEMO)/data/imagenet
	$(VENV)/bin/dropbench pretrain --config smoke --model vit_tiny --data $(DEMO)/data/imagenet \
		--out $(DEMO)/pretrain/vit_tiny_early-dropout --variant early-dropout --cutoff-epoch 2 --resume auto

test: setup
	$(PY) -m pytest -q tests

lint: setup
	$(VENV)/bin/ruff check .

clean-venv:
	rm -rf $(VENV)
