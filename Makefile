# The two commands a newcomer needs: `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# Locked installs (requirements/*.txt: exact versions with hashes, resolved by `make upgrade`).
# The stamp names the locks' checksum, so a changed lock reinstalls. `install` is the whole
# development set (runtime + tests and tools); `install-runtime` (what `make serve` needs) is
# the runtime set alone, satisfied by either stamp.
LOCKS := requirements/runtime.txt requirements/dev.txt requirements/nodeps.txt
LOCKSUM := $(shell cat $(LOCKS) | cksum | cut -d' ' -f1)
INSTALLED := $(VENV)/.installed-dev-$(LOCKSUM)
RUNTIME_INSTALLED := $(VENV)/.installed-runtime-$(LOCKSUM)
PIP_INSTALL := $(PY) -m pip install --quiet --require-hashes --no-deps

.PHONY: run test test-fast install install-runtime upgrade migrate seed lint typecheck pytest browser pgbouncer bench clean-db serve worker

# The development server and, beside it, the job worker (docs/operations.md, Scheduled jobs).
# Ctrl-C stops both: the shell's EXIT trap sends the worker SIGTERM (a background job of a
# non-interactive shell ignores SIGINT) and waits for it to finish its current job. Under
# runserver (a thread per request) the settings pool the connections: at most 16 in all.
run: install migrate seed ## Set everything up and serve on http://127.0.0.1:8000, with the job worker
	@$(PY) manage.py procrastinate worker & worker=$$!; \
	trap 'kill -TERM $$worker 2>/dev/null; wait $$worker' EXIT; \
	$(PY) manage.py runserver 127.0.0.1:8000

test: install lint typecheck pytest ## Set everything up and run ruff, mypy and the whole test suite

# The edit loop: the suite without the slow tests (servers, workers, simulations) and the
# browser; `make test` (and CI) still runs everything.
test-fast: install ## The quick part of the suite: pytest -m "not slow and not browser"
	$(PY) -m pytest -m "not slow and not browser" -q

install: $(INSTALLED)

# --no-deps with --require-hashes: the lock lists every package, each with its hashes, so pip
# installs exactly those files and nothing a dependency's open range would pull in on the day.
$(INSTALLED): $(LOCKS)
	@test -n "$(PYTHON)" || { echo "Python 3.11 is required (python3.11 or python3 on PATH)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -r requirements/dev.txt
	$(PIP_INSTALL) -r requirements/nodeps.txt
	@rm -f $(VENV)/.installed-*
	@touch $@ $(RUNTIME_INSTALLED)

install-runtime:
	@if [ ! -f $(INSTALLED) ] && [ ! -f $(RUNTIME_INSTALLED) ]; then \
		test -n "$(PYTHON)" || { echo "Python 3.11 is required (python3.11 or python3 on PATH)"; exit 1; }; \
		$(PYTHON) -m venv $(VENV) && \
		$(PIP_INSTALL) -r requirements/runtime.txt && \
		$(PIP_INSTALL) -r requirements/nodeps.txt && \
		rm -f $(VENV)/.installed-* && touch $(RUNTIME_INSTALLED); \
	fi

# Moves versions deliberately: re-resolves both locks from requirements/*.in (newest versions
# the ranges allow), with hashes. Review the diff, run `make test`, commit the locks.
UV_COMPILE := $(VENV)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 --no-header --annotation-style line
upgrade: install ## Re-resolve requirements/*.txt to the newest versions requirements/*.in allow
	cd requirements && ../$(UV_COMPILE) --upgrade runtime.in -o runtime.txt
	cd requirements && ../$(UV_COMPILE) --upgrade dev.in -o dev.txt
	cd requirements && ../$(UV_COMPILE) --upgrade --no-deps nodeps.in -o nodeps.txt

migrate: install ## Bootstrap the database (embedded unless DATABASE_URL is set) and migrate
	$(PY) manage.py bootstrap_db
	$(PY) manage.py migrate --noinput

seed: install
	$(PY) manage.py seed_demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy .

pytest: install browser pgbouncer
	$(PY) -m pytest

# The end-to-end admin test drives Debian's Chromium through Playwright (no browser download:
# `playwright install` is never run). Installed here only where that is possible: as root on
# Debian with apt-get. Elsewhere it says why, and the test is skipped with the same reason.
CHROMIUM := /usr/bin/chromium
browser: ## Debian's chromium for tests/backoffice/test_e2e_browser.py (root + apt-get only)
	@if [ -x $(CHROMIUM) ]; then \
		echo "browser: $(CHROMIUM) is installed"; \
	elif [ "$$(id -u)" != 0 ]; then \
		echo "browser: $(CHROMIUM) is missing and this is not root; the browser test will be skipped"; \
	elif [ ! -f /etc/debian_version ] || ! command -v apt-get >/dev/null; then \
		echo "browser: $(CHROMIUM) is missing and this is not Debian with apt-get; the browser test will be skipped"; \
	else \
		echo "browser: installing Debian's chromium with apt-get"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } \
			|| echo "browser: apt-get could not install chromium; the browser test will be skipped"; \
	fi

# tests/deploy/test_pgbouncer.py runs the API and the ingest paths through Debian's PgBouncer in
# transaction mode, started and stopped by the test itself; installed like chromium above.
PGBOUNCER := /usr/sbin/pgbouncer
pgbouncer: ## Debian's pgbouncer for tests/deploy/test_pgbouncer.py (root + apt-get only)
	@if [ -x $(PGBOUNCER) ]; then \
		echo "pgbouncer: $(PGBOUNCER) is installed"; \
	elif [ "$$(id -u)" != 0 ]; then \
		echo "pgbouncer: $(PGBOUNCER) is missing and this is not root; the pooler tests will be skipped"; \
	elif [ ! -f /etc/debian_version ] || ! command -v apt-get >/dev/null; then \
		echo "pgbouncer: $(PGBOUNCER) is missing and this is not Debian with apt-get; the pooler tests will be skipped"; \
	else \
		echo "pgbouncer: installing Debian's pgbouncer with apt-get"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pgbouncer; } \
			|| echo "pgbouncer: apt-get could not install pgbouncer; the pooler tests will be skipped"; \
	fi

# The production server (README, Deploying): migrations, static files, then gunicorn on
# 127.0.0.1:$PORT with $WEB_CONCURRENCY workers (docs/performance.md says why gunicorn's
# sync workers). The environment decides the rest: DJANGO_DEBUG=0 with its secrets, and
# DATABASE_URL, without which it serves the embedded database. The options are bench/servers.py's
# SERVE_OPTIONS (which says why the jitter is half of --max-requests); a test checks they agree.
PORT ?= 8000
WEB_CONCURRENCY ?= 3
serve: install-runtime ## Production server: migrate, collectstatic, gunicorn on 127.0.0.1:$PORT ($WEB_CONCURRENCY workers)
	@if [ -z "$$DATABASE_URL" ]; then echo "serve: no DATABASE_URL, serving the embedded database in .pgdata"; fi
	@if [ -z "$$DATABASE_URL" ]; then export DJANGO_EMBEDDED_DATABASE=1; fi; \
	$(PY) manage.py bootstrap_db && $(PY) manage.py migrate --noinput && \
	$(PY) manage.py collectstatic --noinput --verbosity 0 && \
	exec $(VENV)/bin/gunicorn config.wsgi:application --bind 127.0.0.1:$(PORT) --workers $(WEB_CONCURRENCY) \
		--graceful-timeout 30 --preload --timeout 60 --max-requests 2000 --max-requests-jitter 1000 \
		--limit-request-line 8190 --no-control-socket --logger-class config.gunicorn_logging.AppLogger

worker: install migrate ## The scheduled-jobs worker alone (make run starts one beside the development server)
	$(PY) manage.py procrastinate worker

# Not part of `make test`: generates data in its own database (`bench` on the embedded server,
# or DATABASE_URL) and writes bench/results/<timestamp>.json. BENCH_ARGS="--scale full" for the
# issue's figures; see docs/performance.md. Then bench.load: gunicorn (3 workers) under 10,000
# requests from 16 threads across 20 shops (`bench_load` database; at most 4 minutes of load).
bench: install ## Benchmarks (RLS, ingest, vectors, storage, retention, experiments, retrieval, then HTTP load); options in BENCH_ARGS / LOAD_ARGS
	$(PY) -m bench $(BENCH_ARGS)
	$(PY) -m bench.load $(LOAD_ARGS)

clean-db: ## Delete the embedded database (it is recreated on the next run)
	rm -rf .pgdata
