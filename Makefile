PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

PYTEST := $(BIN)/python -m pytest -q -p no:cacheprovider
# testpaths is ignored once paths are given, so name tests/ alongside notebooks/.
ifneq ($(wildcard notebooks/*.ipynb),)
PYTEST += --nbval-lax tests notebooks
endif

.DEFAULT_GOAL := help
.PHONY: help venv hooks test test-browser sample bench clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

venv: $(VENV)/.installed hooks ## Create .venv and install cinqa with test, bench and spark extras

hooks: ## Strip notebook outputs on `git add` (the git filter .gitattributes names; see cinqa/notebooks.py)
	@if git rev-parse --git-dir >/dev/null 2>&1; then \
	  git config filter.cinqa-notebook.clean '$(BIN)/python -m cinqa.notebooks strip' && \
	  git config filter.cinqa-notebook.smudge cat && \
	  echo "git filter cinqa-notebook configured: notebooks are committed without outputs"; fi

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[test,bench,spark]'
	touch $@

test: venv ## Run the tests (and notebooks with nbval, once there are any)
	$(PYTEST)

test-browser: venv ## Check the HTML report in headless Chromium (Debian's chromium): offline, no script errors
	$(BIN)/python -m pytest -q -p no:cacheprovider --browser -m browser tests

sample: venv ## Render the QA report of the embedded sample to out/report.html
	$(BIN)/cinqa report data/sample-2025-26.xml -o out/report.html

bench: venv ## Run the benchmarks in bench/
	$(BIN)/python bench/run_all.py

clean: ## Remove the venv, build artefacts and outputs
	rm -rf $(VENV) out build *.egg-info .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
