# botwatch: `make demo` runs the agent on the bundled demo estate, `make test` runs every test.
# Both set up what they need themselves (a venv, pip packages, Debian packages).

PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed
PYTEST_WORKERS ?= auto

.PHONY: demo test test-latest lock bench lint clean system-deps

# `make test` installs the exact versions of requirements/test.txt (hash-checked), so that a new
# release of a dependency cannot turn the suite red by surprise; pyproject.toml keeps the minimum
# versions users install against. `make lock` writes the lock anew, `make test-latest` runs the
# suite against the newest releases (drift seen on purpose, in its own venv).
#
# The grafana extra (grafana-client) brings urllib3-future, whose wheel overwrites urllib3 at
# every interpreter start, breaking requests-based tools such as schemathesis: built from source
# with its documented opt-out, it installs beside urllib3 instead.
LOCK        = requirements/test.txt
LOCK_VENV   = .venv-lock
LATEST_VENV = .venv-latest
# `make demo` runs in its own venv with what a user installs, `pip install 'botwatch[all]'` (the
# newest releases, none of the test tools), so that it shows botwatch as it is installed
DEMO_VENV   = .venv-demo
DEMO_STAMP  = $(DEMO_VENV)/.installed
PIP_FLAGS   = --quiet --no-binary urllib3-future
export URLLIB3_NO_OVERRIDE = 1

$(STAMP): pyproject.toml $(LOCK)
	@scripts/system-deps.sh venv
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install $(PIP_FLAGS) --require-hashes -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

$(DEMO_STAMP): pyproject.toml
	@scripts/system-deps.sh venv
	$(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(DEMO_VENV)/bin/python -m pip install $(PIP_FLAGS) -e '.[all]'
	@touch $@

lock:
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet 'uv>=0.5'
	$(LOCK_VENV)/bin/uv pip compile pyproject.toml --extra test --extra grafana --universal \
	  --python-version 3.11 --generate-hashes --upgrade --index-url https://pypi.org/simple \
	  --quiet -o $(LOCK)

test-latest: system-deps
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install $(PIP_FLAGS) --upgrade --upgrade-strategy eager -e '.[test,grafana]'
	$(LATEST_VENV)/bin/python -m pip list --format=freeze > $(LATEST_VENV)/versions.txt
	$(LATEST_VENV)/bin/python -m pytest -n $(PYTEST_WORKERS) tests

system-deps:
	@scripts/system-deps.sh test

demo: $(DEMO_STAMP)
	$(DEMO_VENV)/bin/botwatch demo

test: $(STAMP) system-deps
	$(PY) -m pytest -n $(PYTEST_WORKERS) tests

bench: $(STAMP) system-deps
	@scripts/system-deps.sh bench
	$(PY) benchmarks/run.py

lint: $(STAMP)
	$(PY) -m pyflakes agent exporters dashboards alerts examples benchmarks tests
	$(PY) -m mypy

clean:
	rm -rf $(VENV) $(LOCK_VENV) $(LATEST_VENV) $(DEMO_VENV) build *.egg-info botwatch-demo .pytest_cache .mypy_cache
