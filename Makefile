# Everything a fresh Debian machine needs, as root: `make up` starts a local
# cluster with the demo of examples/, `make down` stops it, `make test` runs the
# whole suite. Each sets up .venv (and the Debian packages it needs) first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEBIAN_PACKAGES := iproute2 iptables dnsutils conntrack procps postgresql
PYTHON ?= $(shell command -v python3.11 || command -v python3)

.PHONY: up down test test-containers venv debs lint bench clean
CLUSTER ?= mp
MPCTL := $(VENV)/bin/mpctl

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

# A 2-node cluster in network namespaces, left running, with the demo Service
# `web` (three pods) and a `client` pod to try it from.
up: venv debs
	$(MPCTL) cluster up --name $(CLUSTER) --detach
	@export KUBECONFIG=.miniplane/$(CLUSTER)/kubeconfig; \
	$(MPCTL) apply -f examples/ && \
	$(MPCTL) wait --for=condition=Ready pod --all --timeout 60s >/dev/null && \
	$(MPCTL) get pods -o wide && \
	echo && echo "The demo is running. In this shell:" && echo && \
	echo "  export PATH=$$PWD/$(VENV)/bin:\$$PATH KUBECONFIG=$$PWD/.miniplane/$(CLUSTER)/kubeconfig" && \
	echo "  kubectl get deploy,rs,pods,ep -o wide" && \
	echo "  kubectl exec client -- curl -s web        # again: another pod answers" && \
	echo "  kubectl exec client -- getent hosts web   # the search path finds web.default.svc" && \
	echo "  kubectl exec client -- dig +short SRV _http._tcp.web.default.svc.cluster.local" && \
	echo "  kubectl scale deploy/web --replicas=5; kubectl set env deploy/web VERSION=v2" && \
	echo "  kubectl port-forward svc/web 8080:80 & curl -s 127.0.0.1:8080" && \
	echo "  dig @127.0.0.1 -p $$(python3 -c 'import json;print(json.load(open(".miniplane/$(CLUSTER)/cluster.json"))["dns"].split(":")[1])') +short web.default.svc.cluster.local" && \
	echo "  kubectl logs deploy/web; kubectl get events; mpctl cluster status" && \
	echo && echo "Stop it with: make down"

down: venv
	$(MPCTL) cluster down --name $(CLUSTER)

test: venv debs
	$(VENV)/bin/ruff check apimachinery apiserver client componentbase controllers dnsd mpctl nodeagent tests bench tools
	$(VENV)/bin/mypy --config-file pyproject.toml
	$(VENV)/bin/pytest -q -p no:cacheprovider

# docker-compose.yml built and run in a private Docker engine (root; README,
# "Docker Compose"). Not part of `make test`; .ci/run runs it after.
test-containers: venv debs
	$(VENV)/bin/pytest -q -p no:cacheprovider -m containers tests/containers --durations=0

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
	$(PY) bench/apiserver.py --storage postgresql
	$(PY) bench/apiserver.py --storage postgresql --apiservers 3
	$(PY) bench/watchers.py
	$(PY) bench/lists.py
	$(PY) bench/controllers.py
	$(PY) bench/dns.py
	$(PY) bench/proxy.py
	$(PY) bench/e2e.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
