# Everything a fresh Debian machine needs, as root: `make up` runs the API server,
# `make test` runs the whole suite. Both set up .venv first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEBIAN_PACKAGES := iproute2 iptables dnsutils conntrack procps
PYTHON ?= $(shell command -v python3.11 || command -v python3)

.PHONY: up test venv debs lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Install only what is missing, so a machine that has them needs no network.
debs:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

up: venv
	$(VENV)/bin/mp-apiserver --listen 127.0.0.1:6443 --storage-url sqlite:///.miniplane/state.db

test: venv debs
	$(VENV)/bin/ruff check apiserver client controllers dnsd nodeagent tests bench
	$(VENV)/bin/pytest -q -p no:cacheprovider

BENCH_DEBIAN_PACKAGES := dnsperf dnsmasq-base

# dnsmasq-base is the binary without the system service (which would take port 53).
bench: venv
	@missing=""; for p in $(BENCH_DEBIAN_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	$(PY) bench/apiserver.py
	$(PY) bench/controllers.py
	$(PY) bench/dns.py
	$(PY) bench/proxy.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
