# One image for every miniplane component: mp-apiserver, mp-controllers, mp-dnsd,
# mp-nodeagent and mpctl (docker-compose.yml runs it for every service, the `pki`
# one-shot that makes the cluster's credentials included).
#
#   docker build -t miniplane .
#
# Build arguments, for machines without a registry (tests/containers does this):
#   BASE   the base image; any Debian bookworm with python3 (3.11) and python3-venv.
#   A wheels/ directory in the build context, when it holds wheels, is installed with
#   `pip install --no-index` (the project's wheel and its dependencies, PostgreSQL's
#   driver included, e.g. from `pip wheel '.[postgres]' -w wheels`) instead of
#   building the project and fetching from PyPI.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

# What the node agent runs (ip, iptables, conntrack, sysctl) and what pods use: pods
# are processes inside the node container, so python3, curl, getent and dig must be
# here. And Debian's PostgreSQL server, which docker-compose.ha.yml's `postgres`
# service runs (it makes its own database cluster on its volume: Debian's default
# one is not made, or dropped when the base came with it). Installed only when
# missing, so a base that has them needs no network.
RUN set -eu; missing=""; \
    for p in iproute2 iptables conntrack dnsutils curl procps postgresql; do \
        dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; \
    done; \
    if [ -n "$missing" ]; then \
        mkdir -p /etc/postgresql-common/createcluster.d; \
        echo "create_main_cluster = false" \
            > /etc/postgresql-common/createcluster.d/miniplane.conf; \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    for conf in /etc/postgresql/*/main; do \
        if [ -d "$conf" ]; then pg_dropcluster "$(basename "$(dirname "$conf")")" main; fi; \
    done

# A virtualenv: works on python:3.11 images and on Debian's python3 (PEP 668) alike.
ENV VIRTUAL_ENV=/opt/miniplane \
    PATH=/opt/miniplane/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY . /tmp/miniplane-src
RUN set -eu; python3 -m venv /opt/miniplane; \
    if ls /tmp/miniplane-src/wheels/*.whl >/dev/null 2>&1; then \
        pip install --no-cache-dir --no-index --find-links /tmp/miniplane-src/wheels \
            "miniplane[postgres]"; \
    else \
        pip install --no-cache-dir "/tmp/miniplane-src[postgres]"; \
    fi; \
    rm -rf /tmp/miniplane-src; \
    mp-apiserver --help >/dev/null

WORKDIR /var/lib/miniplane
EXPOSE 6443
CMD ["mp-apiserver", "--listen", "0.0.0.0:6443", "--storage-url", "sqlite:////var/lib/miniplane/state.db"]
