# Two entry points a newcomer needs: `make repro` (whole study) and `make test`.
# Both create .venv from the pinned lock file if it is missing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Two torch processes on two cores thrash badly without this.
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1

.PHONY: venv repro verify pull test test-fast bench check-report lock clean-venv

LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.json

venv: $(VENV)/.installed $(LAB_OVERRIDES)

# JupyterLab (this venv's) opens notebooks/*.py, jupytext percent-format notebooks, as notebooks instead of as text.
$(LAB_OVERRIDES): $(VENV)/.installed
	mkdir -p $(dir $@)
	$(BIN)/jupytext-config --settings-file $@ set-default-viewer python

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

# The whole params.yaml is checked first: a mistake stops here, before DVC removes any stage's outputs (a plain
# `dvc repro` stops at the same check, dvc.yaml's first stage `validate`).
# Afterwards, the figures that differ from the published run beyond their tolerance are listed (an experiment
# is expected to differ; `make verify` is the strict check of a reproduction).
repro: venv
	$(BIN)/python -m nessa_lib.pipeline.validate
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	@$(BIN)/python -m nessa_lib.pipeline.verify --failures-only || echo "(make repro: your run differs from the published one where listed above; see README, Reproducing the study)"

# Your run against the published one (git HEAD, or PUBLISHED=<rev>): every headline figure within its tolerance,
# every verdict equal, and the nbval key-number cell of the committed notebook re-run on your data.
PUBLISHED ?= HEAD
verify: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m nessa_lib.pipeline.verify --published $(PUBLISHED) --nbval

# Stages 01-03's outputs (corpus, encoders, embeddings) from your DVC remote (docs/sharing.md), then a check that
# they are what this checkout's params.yaml and code would build, so that `make repro` starts at stage 04.
pull: venv
	$(BIN)/dvc pull --with-deps extract_embeddings
	@$(BIN)/dvc status --with-deps extract_embeddings -q || { $(BIN)/dvc status --with-deps extract_embeddings; \
	  echo "make pull: the stages above differ from the pulled dvc.lock (params.yaml or code changed?);" \
	       "dvc repro would re-run them (docs/sharing.md)"; exit 1; }

test: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

test-fast: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -m "not slow"

bench: venv
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# The HTML report in a real browser (needs Chromium: sudo apt-get install -y chromium); after `make repro`.
# `make check-report SCREENSHOT=docs/report-screenshot.png` also rewrites the report's screenshot in docs/.
SCREENSHOT ?=
check-report: venv
	$(BIN)/python benchmarks/check_report.py $(if $(SCREENSHOT),--screenshot $(SCREENSHOT))

lock: venv
	$(BIN)/pip install -q -r requirements.txt
	( echo "# Full resolved environment (pip freeze of a venv built from requirements.txt). Do not edit by hand: \`make lock\`."; \
	  $(BIN)/pip freeze --exclude-editable | grep -v '^nessa'; \
	  $(BIN)/pip freeze --all | grep '^setuptools==' ) > requirements.lock

clean-venv:
	rm -rf $(VENV)
