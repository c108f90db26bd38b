# Two entry points on a fresh machine: `make demo` and `make test`.
# Each creates the virtualenv and installs what it needs.

VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CHARTJS_VERSION := 4.4.7
CHARTJS := static/vendor/chart.umd.js

.PHONY: demo test lint bench browser clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# A local Chart.js copy from the npm registry: the tests and closed networks
# use it instead of the CDN.
$(CHARTJS):
	npm install --silent --no-save --no-audit --no-fund --prefix build/npm chart.js@$(CHARTJS_VERSION)
	mkdir -p static/vendor
	cp build/npm/node_modules/chart.js/dist/chart.umd.js $(CHARTJS)

# Debian's Chromium drives the browser tests (Playwright's own download does
# not work offline).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "install Debian's chromium package (sudo apt-get install chromium)"; exit 1; fi; }

demo: $(STAMP) $(CHARTJS)
	OTKLIK_CHARTJS_URL=/static/vendor/chart.umd.js $(VENV)/bin/b24app demo

test: $(STAMP) $(CHARTJS) browser
	$(VENV)/bin/pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check b24app handlers tests bench

bench: $(STAMP)
	$(PY) bench/ingest.py

clean:
	rm -rf build instance .pytest_cache
