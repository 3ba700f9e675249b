# botwatch: `make demo` runs the agent on the bundled demo estate, `make test` runs every test.
# Both set up what they need themselves (a venv, pip packages, Debian packages).

PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed
PYTEST_WORKERS ?= auto

.PHONY: demo test bench lint clean system-deps

# The grafana extra (grafana-client) brings urllib3-future, whose wheel overwrites urllib3 at
# every interpreter start, breaking requests-based tools such as schemathesis: built from source
# with its documented opt-out, it installs beside urllib3 instead.
$(STAMP): pyproject.toml
	@scripts/system-deps.sh venv
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	URLLIB3_NO_OVERRIDE=1 $(PY) -m pip install --quiet --no-binary urllib3-future -e '.[test,grafana]'
	@touch $@

system-deps:
	@scripts/system-deps.sh test

demo: $(STAMP)
	$(VENV)/bin/botwatch demo

test: $(STAMP) system-deps
	$(PY) -m pytest -n $(PYTEST_WORKERS) tests

bench: $(STAMP) system-deps
	@scripts/system-deps.sh bench
	$(PY) benchmarks/run.py

lint: $(STAMP)
	$(PY) -m pyflakes agent exporters dashboards alerts examples benchmarks tests

clean:
	rm -rf $(VENV) build *.egg-info botwatch-demo .pytest_cache
