# The two commands: `make run` and `make test`. Everything else is a helper of theirs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# Django's debug pages are a developer's opt-in: `make run DEBUG=1`. Left empty, visitors get the
# site's own 404 and 500 pages (liqsite/settings.py).
DEBUG ?=

.PHONY: run test setup lint format worker beat stream clean

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

setup: $(VENV)/.runtime
	$(PY) manage.py migrate --noinput
	$(PY) manage.py realign_open_interest
	$(PY) manage.py seed_demo --if-empty --real
	$(PY) manage.py load_brackets --if-empty

## Set up (virtualenv, packages, database, demo data and its maps) and serve on 127.0.0.1:8000;
## without Redis, an in-process scheduler keeps the demo moving and checks alerts every minute.
run: setup
	DEBUG=$(DEBUG) $(PY) manage.py serve $(HOST):$(PORT)

## Run the tests on PostgreSQL + Redis when reachable, else on the embedded default.
test: $(VENV)/.dev
	$(PY) -m tests.runner $(ARGS)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

worker: $(VENV)/.runtime
	$(VENV)/bin/celery -A liqsite worker -Q ingest,ingest.binance,ingest.bybit,ingest.okx,compute,followup -l info

beat: $(VENV)/.runtime
	$(VENV)/bin/celery -A liqsite beat -l info

stream: $(VENV)/.runtime
	$(PY) manage.py stream_liquidations

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache
