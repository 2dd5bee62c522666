# One-command entry points. `make run` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: setup run test check lint bench bench-smoke compile clean catalog security stress \
	docs docs-serve docs-check docs-publish tutorials

setup: $(STAMP) compile

# The venv, the project (editable) and its test tools; rebuilt when pyproject.toml changes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	$(BIN)/python -m compileall -q -j 0 $$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') >/dev/null
	rm -f $(VENV)/.installed-* && touch $@

# PYTHONDONTWRITEBYTECODE=1 machines never cache bytecode on import: compile our sources
# up front, or every axctl start pays for compiling them.
compile:
	@$(BIN)/python -m compileall -q -x builtin_plugins axd axctl >/dev/null

## run: start axd, index this checkout, and show a search
run: setup
	$(BIN)/axctl start
	$(BIN)/axctl index .
	$(BIN)/axctl find live config reload --limit 5

## test: lint, then the whole test suite (unit, in-process API, end-to-end daemons)
# Four workers on two cores: the end-to-end tests spend much of their time waiting on the
# daemons they start (two workers left the cores ~40 % idle); worksteal evens out the end.
test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -n 4 --dist worksteal -q

check: test

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## bench: the benchmarks, full length (results go in bench/RESULTS.md by hand)
bench: setup
	$(BIN)/python bench/cli_startup.py

## bench-smoke: each benchmark once, briefly, to prove it still runs (CI)
bench-smoke: setup
	$(BIN)/axctl perf run bench/workloads/smoke.toml
	$(BIN)/python bench/cli_startup.py --smoke
	$(BIN)/python bench/corpus.py --smoke
	$(BIN)/python bench/index_build.py --smoke
	$(BIN)/python bench/search_latency.py --smoke
	$(BIN)/python bench/restart.py --smoke
	$(BIN)/python bench/save_to_search.py --smoke
	$(BIN)/python bench/relevance.py --smoke
	$(BIN)/python bench/plugins.py --smoke
	$(BIN)/python bench/reload.py --smoke
	$(BIN)/python bench/containment.py --smoke
	$(BIN)/python bench/monitoring.py --smoke
	$(BIN)/python bench/lsp.py --smoke

## docs: build the documentation site into site/ (strict: a broken link fails)
DOCS_STAMP := $(VENV)/.docs-$(shell cksum pyproject.toml | cut -d' ' -f1)
export NO_MKDOCS_2_WARNING := 1

$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[docs]'
	rm -f $(VENV)/.docs-* && touch $@

docs: $(DOCS_STAMP)
	$(BIN)/mkdocs build --strict --quiet

## docs-serve: preview the site on http://127.0.0.1:8000, rebuilt on save
docs-serve: $(DOCS_STAMP)
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

## docs-check: audit the built site (links, meta, JSON-LD, axe, Lighthouse >= 95, mike)
docs-check: docs
	npm ci --prefix tools/docs --no-audit --no-fund --silent
	$(BIN)/python tools/docs/check_site.py site
	$(BIN)/python tools/docs/audit_site.py site --json site-audit.json
	BIN=$(BIN) tools/docs/check-mike

## docs-publish: this version into the local gh-pages branch with mike (alias latest)
docs-publish: $(DOCS_STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/mike deploy --update-aliases \
	  $$($(BIN)/python -c 'import axd; print(axd.__version__)') latest
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/mike set-default latest

## stress: the reliability suite at full scale (tests/stress/, AXD_STRESS=full): 50 kill -9
## points, and the other parts' long variants; the figures go to bench/RESULTS.md
stress: setup
	AXD_STRESS=full $(BIN)/pytest -q -s -p no:randomly tests/stress

## security: bandit over axd and axctl (medium and high; each exception triaged with a
## `# nosec` reason, see docs/security.md), then pip-audit over the installed packages
## (advisories triaged in tools/security/audit-triage.txt)
security: setup
	$(BIN)/bandit -q -r axd axctl -ll
	BIN=$(BIN) tools/security/audit-dependencies

## catalog: publish the built-in plugins in marketplace/ (AXD_CATALOG_KEY=signing key file)
catalog: setup
	BIN=$(BIN) tools/marketplace/publish-builtins

## tutorials: run every tutorial non-interactively against a fresh daemon (CI)
tutorials: setup
	BIN=$(BIN) tools/run-tutorials

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache site
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
