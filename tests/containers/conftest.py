"""Session fixtures of the container test: one private engine, base image and image.

Collected only when the marker expression names ``containers`` (``make
test-containers`` runs ``pytest -m containers tests/containers``), so the default
run doesn't even import the tests. Everything here is torn down at the end of the session, also after a failure: the
engine's ``stop`` removes containers, volumes, networks and images, stops ``dockerd``
by pid and deletes its data root. Only the debootstrap tarball stays (the cache).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.containers.harness import (
    BASE_IMAGE,
    HOST_PACKAGES,
    IMAGE,
    Engine,
    base_tarball,
    build_context,
    ensure_debian_packages,
)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Collected only under ``-m containers``: a plain ``pytest`` never starts an engine."""
    if "containers" not in (config.getoption("markexpr") or ""):
        return True
    return None


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    if os.geteuid() != 0:
        pytest.skip("the container test needs root (apt-get, dockerd, debootstrap)")
    ensure_debian_packages(HOST_PACKAGES)
    eng = Engine(tmp_path_factory.mktemp("engine"))
    try:
        eng.start()
        yield eng
    finally:
        eng.stop()


@pytest.fixture(scope="session")
def context(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The build context (sources + wheels/), with the offline base image imported."""
    engine.docker("import", str(base_tarball()), BASE_IMAGE, timeout=300)
    return build_context(tmp_path_factory.mktemp("context"))


@pytest.fixture(scope="session")
def image(engine: Engine, context: Path) -> str:
    """The Dockerfile built as a user would (``docker build``), on the offline base."""
    engine.docker("build", "--quiet", "--network", "none", "--build-arg", f"BASE={BASE_IMAGE}",
                  "-t", IMAGE, str(context), timeout=900)
    return IMAGE
