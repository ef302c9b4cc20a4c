# The two commands a newcomer needs: `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed-$(shell cat requirements.txt | cksum | cut -d' ' -f1)
# mypy's Django plugin imports the settings; it needs no database, so it must not start one.
NO_DB := DATABASE_URL=postgresql://unused@127.0.0.1:1/unused

.PHONY: run test install migrate seed lint typecheck pytest bench clean-db

run: install migrate seed ## Set everything up and serve on http://127.0.0.1:8000
	$(PY) manage.py runserver 127.0.0.1:8000

test: install lint typecheck pytest ## Set everything up and run ruff, mypy and the whole test suite

install: $(INSTALLED)

$(INSTALLED): requirements.txt
	@test -n "$(PYTHON)" || { echo "Python 3.11 is required (python3.11 or python3 on PATH)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

migrate: install ## Bootstrap the database (embedded unless DATABASE_URL is set) and migrate
	$(PY) manage.py bootstrap_db
	$(PY) manage.py migrate --noinput

seed: install
	$(PY) manage.py seed_demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(NO_DB) $(VENV)/bin/mypy .

pytest: install
	$(PY) -m pytest

clean-db: ## Delete the embedded database (it is recreated on the next run)
	rm -rf .pgdata
