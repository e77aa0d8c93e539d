# The two commands of the README:
#   make run    set up .venv and serve the shipped models on http://127.0.0.1:8000
#   make test   set up .venv with the test dependencies (Chromium, a Docker engine) and run
#               every test, the image's and the replicas' included
# And the image: make image   (README, Deployment)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test install install-test chromium docker-engine image lint

run: install
	$(BIN)/namelab serve --host $(HOST) --port $(PORT)

test: install-test chromium docker-engine
	$(BIN)/ruff check app tests bench
	$(BIN)/python -m pytest

install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

install-test: $(VENV)/.installed-test
$(VENV)/.installed-test: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(VENV)/.installed $@

# Browser tests drive Debian's Chromium (Playwright's own browser download does not work offline).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# The container tests (tests/deploy) build the images themselves, under test tags, with the
# script `make image` runs; they need the engine: Debian's docker.io and docker-compose,
# installed when missing, and dockerd, started when `docker info` fails.
docker-engine:
	deploy/images.sh engine

# The images `namelab` and `namelab-proxy`, built here: bases made from Debian's packages by
# mmdebstrap and a wheelhouse built with this machine's pip (no registry is reachable).
image: install
	PYTHON=$(BIN)/python deploy/images.sh

lint: install-test
	$(BIN)/ruff check app tests bench
