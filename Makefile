# dropbench: `make demo` and `make test` each set up .venv/ (tools/setup_env.sh) first.
# DROPBENCH_WHEELHOUSE=DIR  take a prebuilt mmcv 2.1.0 wheel from DIR instead of building it (CI: ../shared/wheels)
VENV   := .venv
PY     := $(VENV)/bin/python
DEMO   ?= results/smoke

.PHONY: setup demo test lint clean-venv

setup:
	@bash tools/setup_env.sh

# the smoke suite on generated data: every pretraining variant, every downstream task, then Tables 4-6 and the probe
# table, and the report (figures: schedules, curves, differences, probe vs fine-tuning)
# (re-running it skips what is done; interrupting it loses nothing)
demo: setup
	$(VENV)/bin/dropbench suite run --preset smoke --out $(DEMO)
	$(VENV)/bin/dropbench report --results $(DEMO)

test: setup
	$(PY) -m pytest tests

lint: setup
	$(VENV)/bin/ruff check .

clean-venv:
	rm -rf $(VENV)
