# Two commands on a fresh machine: `make up` (install + bring the sandbox up), `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install up down status test test-unit test-integration test-containers e2e lint-dags bench clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

up: install
	$(BIN)/sandbox up

down: install
	$(BIN)/sandbox down

status: install
	$(BIN)/sandbox status

test: install
	$(BIN)/pytest tests -m "not e2e"

test-unit: install
	$(BIN)/pytest tests -m unit

test-integration: install
	$(BIN)/pytest tests -m integration

test-containers: install
	$(BIN)/pytest tests -m containers

e2e: install
	$(BIN)/pytest tests -m e2e

lint-dags: install
	$(BIN)/sandbox lint sample_dags

bench: install
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
