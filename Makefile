# Ops Console: the two commands are `make run` and `make test`.
# Python 3.11, 3.12 or 3.13. Empty: scripts/ensure-venv picks the newest found.
PYTHON ?=
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: help install run test check lint format migrations bench screenshots clean

help:
	@echo "make run    - install, migrate, seed demo data; start web (127.0.0.1:8000),"
	@echo "              Celery worker and a development SMTP sink (127.0.0.1:1025)"
	@echo "make test   - install, lint, and run the whole test suite"
	@echo "make bench  - benchmarks (pipeline throughput, PIPELINING over a slow link,"
	@echo "              rate limit, audit queries, web tier, instructions per read)"
	@echo "Python 3.11-3.13: the newest found is used; PYTHON=/path/to/python3.x picks one."

# Makes $(VENV) with a supported Python (rebuilding one made by another Python,
# with a message) and installs the project when pyproject/constraints change.
install:
	@PYTHON="$(PYTHON)" VENV="$(VENV)" scripts/ensure-venv

# Development defaults (core.env.dev_stack; anything already set wins): DEBUG on,
# the controller SMTP default on the sink (DEV_SMTP_PORT), PUBLIC_URL on PORT.
run: install
	$(BIN)/python -m opsconsole.devstack

check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DEBUG=true $(BIN)/python manage.py makemigrations --check --dry-run
	DEBUG=true $(BIN)/python manage.py spectacular --validate --fail-on-warn --file /dev/null
	$(BIN)/lint-imports

test: check
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Benchmarks print ratios against baselines measured in the same run. They use
# DATABASE_URL / REDIS_URL when set (PostgreSQL and Redis give the real numbers).
bench: install
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/rate_limit.py
	$(BIN)/python bench/audit_query.py
	$(BIN)/python bench/web_load.py
	$(BIN)/python bench/fairness.py
	$(BIN)/python bench/instructions.py

# Runs the browser journeys and copies five of their screenshots (four light,
# one dark) for the README.
screenshots: install
	$(BIN)/python -m pytest -q tests/e2e/test_journeys.py tests/e2e/test_email_branding.py \
	   tests/e2e/test_every_page.py::test_dark_mode_screenshot
	mkdir -p docs/img
	cp var/screenshots/ops-smtp-test-sent.png var/screenshots/web-smtp-settings.png \
	   var/screenshots/ops-audit-log.png var/screenshots/ops-email-preview.png \
	   var/screenshots/ops-smtp-dark.png docs/img/

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

migrations: install
	DEBUG=true $(BIN)/python manage.py makemigrations

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
