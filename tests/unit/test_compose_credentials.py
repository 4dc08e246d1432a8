"""docker-compose.yml hands each component its own credential and nothing else.

Read from the file itself (tests/containers runs it for real, slowly): which volume
each service mounts, against what the `pki` service's ``mpctl cluster pki`` plan
puts in each. A node container holding the admin's or another node's key would
make that node cluster-admin; this fails first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mpctl.cluster import plan, storagerecord
from tests.conftest import REPO

SPEC = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = SPEC["services"]
PKI_DIR = "/var/lib/miniplane/pki"  # where the API server mounts `apiserver-pki`


def flag(argv: list[str], name: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == name]


def mounts(service: str) -> dict[str, str]:
    """volume name -> path in the container."""
    out = {}
    for entry in SERVICES[service].get("volumes") or []:
        source, target = entry.split(":")[:2]
        out[source] = target
    return out


def pki_command() -> list[str]:
    """The `pki` one-shot's ``mpctl`` command line (its entrypoint runs ``mpctl "$@"``
    with the service's ``command``, then hands the API server copies of its files)."""
    assert 'mpctl "$$@"' in pki_script()
    argv = ["mpctl", *SERVICES["pki"]["command"]]
    assert argv[:3] == ["mpctl", "cluster", "pki"]
    return argv


def pki_script() -> str:
    entrypoint = SERVICES["pki"]["entrypoint"]
    assert entrypoint[:2] == ["sh", "-ec"]
    return entrypoint[2]


def copied_to_apiserver() -> list[str]:
    """The files the `pki` one-shot copies to the `apiserver-pki` volume."""
    (line,) = [ln.strip() for ln in pki_script().splitlines() if ln.strip().startswith("for f in ")]
    return line.removeprefix("for f in ").split(";")[0].split()


def node_services() -> list[str]:
    return [name for name in SERVICES if name.startswith("node-")]


def test_the_pki_service_makes_a_credential_for_every_node_service() -> None:
    assert flag(pki_command(), "--node") == node_services()


def test_each_credential_directory_is_a_volume_of_its_own() -> None:
    argv = pki_command()
    pki = plan.pki_plan(Path(flag(argv, "--dir")[0]), server=flag(argv, "--server")[0],
                        nodes=flag(argv, "--node"))
    want = {f"{c.name}-credentials": str(c.kubeconfig.parent) for c in pki.credentials}
    assert mounts("pki") == {"pki": str(pki.dir), "apiserver-pki": "/apiserver-pki", **want}
    assert set(SPEC["volumes"]) == {"state", "pki", "apiserver-pki", *want}


@pytest.mark.parametrize("service", ["controllers", "dnsd", *node_services(),
                                     "bootstrap", "demo"])
def test_a_client_mounts_only_its_own_credential(service: str) -> None:
    svc = SERVICES[service]
    argv = svc["command"]
    owner = service if service not in ("bootstrap", "demo") else "admin"
    credential_volumes = {v: p for v, p in mounts(service).items()
                          if v in ("pki", "apiserver-pki") or v.endswith("-credentials")}
    assert list(credential_volumes) == [f"{owner}-credentials"]
    (kubeconfig,) = flag(argv, "--kubeconfig")
    assert kubeconfig == f"{credential_volumes[f'{owner}-credentials']}/kubeconfig"
    assert all(entry.endswith(":ro") for entry in svc["volumes"]
               if entry.startswith(f"{owner}-credentials:"))
    assert all(not s.startswith("http://") for s in flag(argv, "--server"))


def test_the_api_server_serves_the_pki_services_files() -> None:
    """Copies of exactly the files it names, read-only, without the CA's key: a
    compromised API server container cannot sign a credential."""
    argv = SERVICES["apiserver"]["command"]
    assert "pki" not in mounts("apiserver")
    assert "apiserver-pki:" + PKI_DIR + ":ro" in SERVICES["apiserver"]["volumes"]
    pki = plan.pki_plan(Path(PKI_DIR), server="https://apiserver:6443", nodes=[])
    expected = plan.apiserver_pki_flags(pki)
    named = []
    for name, value in zip(expected[::2], expected[1::2], strict=True):
        if name == "--cert-dir":  # nothing to write there: every file is given
            assert flag(argv, name) == [], name
            continue
        assert flag(argv, name) == [value], name
        named.append(Path(value).name)
    # and the storage record its entrypoint checks --storage-url against
    # (the CA once: it is both the client CA and the node agents' CA)
    assert sorted(copied_to_apiserver()) == sorted([*dict.fromkeys(named), storagerecord.FILE])
    assert pki.ca_key.name not in copied_to_apiserver()
    address = SERVICES["apiserver"]["networks"]["cluster"]["ipv4_address"]
    assert flag(argv, "--advertise-address") == [address]
    assert flag(pki_command(), "--apiserver-ip") == [address]
    assert flag(pki_command(), "--apiserver-name") == ["apiserver"]
    assert "https://127.0.0.1:6443/readyz" in SERVICES["apiserver"]["healthcheck"]["test"]


def test_metrics_stay_on_loopback_in_every_container() -> None:
    for name, svc in SERVICES.items():
        for value in flag(svc.get("command") or [], "--metrics-listen"):
            assert value.startswith("127.0.0.1:"), (name, value)


@pytest.mark.parametrize("service", node_services())
def test_each_node_agent_serves_its_api_with_the_files_pki_made_for_it(service: str) -> None:
    """The agent API's serving pair and CA are the ones the `pki` one-shot writes into
    the node's own credential volume (``plan.agent_files``), at the path it mounts."""
    argv = SERVICES[service]["command"]
    pki = plan.pki_plan(Path("/pki"), server="https://apiserver:6443", nodes=[service])
    here = mounts(service)[f"{service}-credentials"]
    cert, key, ca = (f"{here}/{f.name}" for f in pki.agent_files(service))
    assert flag(argv, "--api-listen") == ["0.0.0.0:10250"]
    assert (flag(argv, "--tls-cert-file"), flag(argv, "--tls-private-key-file"),
            flag(argv, "--client-ca-file")) == ([cert], [key], [ca])
